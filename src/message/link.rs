//! Link format (RFC 6690).
