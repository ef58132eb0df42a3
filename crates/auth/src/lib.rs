//! Token validation and authorisation (being built).
