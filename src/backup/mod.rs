//! Proxmox's backup commands over QMP: start (VMA or PBS), query, cancel.

pub mod status;

pub use status::BackupStatus;
