//! The framework-neutral HTTP layer shared by every adapter (feature `http`).
