//! Set of cluster numbers, one bit each, grown on demand.

/// Which clusters of one device have been seen.
///
/// Grows with the highest cluster inserted, so a device size read from an untrusted header
/// costs no memory until data for it arrives.
#[derive(Debug, Default)]
pub(crate) struct ClusterSet {
    words: Vec<u64>,
    len: u64,
}

impl ClusterSet {
    /// Adds `cluster`; false if it was already present.
    pub(crate) fn insert(&mut self, cluster: u32) -> bool {
        let (word, bit) = Self::position(cluster);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let present = self.words[word] & bit != 0;
        self.words[word] |= bit;
        if !present {
            self.len += 1;
        }
        !present
    }

    /// Whether `cluster` is present.
    pub(crate) fn contains(&self, cluster: u32) -> bool {
        let (word, bit) = Self::position(cluster);
        self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Number of clusters present.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The lowest cluster below `end` that is not present.
    pub(crate) fn first_missing(&self, end: u64) -> Option<u64> {
        let mut base = 0u64;
        for &word in &self.words {
            if base >= end {
                return None;
            }
            if word != u64::MAX {
                let missing = base + u64::from(word.trailing_ones());
                return (missing < end).then_some(missing);
            }
            base += 64;
        }
        (base < end).then_some(base)
    }

    fn position(cluster: u32) -> (usize, u64) {
        // u32 always fits in usize on the 32/64-bit targets std supports.
        ((cluster / 64) as usize, 1u64 << (cluster % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterSet;

    #[test]
    fn insert_contains_len() {
        let mut set = ClusterSet::default();
        assert!(!set.contains(70));
        assert!(set.insert(70));
        assert!(!set.insert(70));
        assert!(set.contains(70));
        assert!(!set.contains(69));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn first_missing() {
        let mut set = ClusterSet::default();
        assert_eq!(set.first_missing(0), None);
        assert_eq!(set.first_missing(3), Some(0));
        for c in 0..130 {
            set.insert(c);
        }
        assert_eq!(set.first_missing(130), None);
        assert_eq!(set.first_missing(131), Some(130));
        let mut gap = ClusterSet::default();
        for c in (0..100).filter(|&c| c != 64) {
            gap.insert(c);
        }
        assert_eq!(gap.first_missing(100), Some(64));
        assert_eq!(gap.first_missing(64), None);
    }
}
