//! Pure, IO-free NSQ wire code (filled in by the protocol work).
