//! The one error a bad query parameter, path segment or field produces.

/// A rejected input value: which parameter it was and why it was refused.
///
/// The HTTP layer turns this into a 400 `CSBS.9001` whose message names the parameter, so that
/// a caller can fix the request without guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {reason}")]
pub struct ParamError {
    /// The query parameter, path segment or document field at fault.
    pub parameter: String,
    /// Why the value was refused, in words meant for the caller.
    pub reason: String,
}

impl ParamError {
    /// A refusal of `parameter` for `reason`.
    pub fn new(parameter: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            parameter: parameter.into(),
            reason: reason.into(),
        }
    }
}
