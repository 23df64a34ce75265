//! Rules for names that end up as file names (`vma extract` writes configs and disks by name).

use crate::error::VmaError;

/// Accepts a name usable as a single file name component: not empty, not `.` or `..`, and
/// without `/` or NUL.
pub(crate) fn check_file_name(name: &str) -> Result<(), VmaError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "not a file name"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains('\0') {
        "contains NUL"
    } else {
        return Ok(());
    };
    Err(VmaError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::check_file_name;

    #[test]
    fn plain_names_only() {
        assert!(check_file_name("qemu-server.conf").is_ok());
        assert!(check_file_name("drive-scsi0").is_ok());
        for bad in ["", ".", "..", "a/b", "/etc", "a\0b"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }
}
