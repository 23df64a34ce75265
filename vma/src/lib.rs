//! VMA archive format.
