//! URIs (RFC 7252 §6).
