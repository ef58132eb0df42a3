//! Extra CA certificates for the identity services the service calls (Keystone, a JWKS URL),
//! read from one PEM file at start-up.

use std::path::Path;

use crate::KeyError;

/// The certificates of the PEM file at `path`. `invalid` makes the error for a file that was
/// read but holds no usable certificate, so that it names the setting at fault.
pub(crate) fn read_ca_file(
    path: &Path,
    invalid: impl Fn(String) -> KeyError,
) -> Result<Vec<reqwest::Certificate>, KeyError> {
    let pem = std::fs::read(path).map_err(|source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|error| invalid(format!("{}: not PEM certificates: {error}", path.display())))?;
    if certificates.is_empty() {
        return Err(invalid(format!("{} holds no certificate", path.display())));
    }
    Ok(certificates)
}
