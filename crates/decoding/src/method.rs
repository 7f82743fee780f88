//! The methods of methods.md, by the names YAML and the CLI use, with their α ranges.

use serde::{Deserialize, Serialize};
use speccascade_core::rules::*;
use speccascade_core::{CoreError, DeferralRule};

use crate::DecodeError;

/// Every decoding method of the paper and its baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Drafter,
    Verifier,
    SpecDecode,
    SpecDecodeLossy,
    SpecCascadeChow,
    SpecCascadeDiff,
    SpecCascadeOpt,
    SpecCascadeTokenV1,
    SpecCascadeTokenV2,
    SpecCascadeTokenV3,
    Bild,
    TokenCascadeChow,
    OracleCascadeDiff,
    SeqCascadeChow,
}

/// How α is bounded for a method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlphaRange {
    pub lo: f64,
    pub hi: f64,
    /// `hi` itself excluded (only `spec_decode_lossy`: α < 1).
    pub hi_open: bool,
}

impl AlphaRange {
    pub fn contains(&self, a: f64) -> bool {
        a.is_finite() && a >= self.lo && if self.hi_open { a < self.hi } else { a <= self.hi }
    }
}

impl std::fmt::Display for AlphaRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |x: f64| {
            if x == f64::NEG_INFINITY {
                "-inf".to_string()
            } else if x == f64::INFINITY {
                "inf".to_string()
            } else {
                x.to_string()
            }
        };
        let (l, r) = (if self.lo.is_finite() { "[" } else { "(" }, if self.hi_open || !self.hi.is_finite() { ")" } else { "]" });
        write!(f, "{l}{}, {}{r}", show(self.lo), show(self.hi))
    }
}

impl Method {
    pub const ALL: [Method; 14] = [
        Method::Drafter,
        Method::Verifier,
        Method::SpecDecode,
        Method::SpecDecodeLossy,
        Method::SpecCascadeChow,
        Method::SpecCascadeDiff,
        Method::SpecCascadeOpt,
        Method::SpecCascadeTokenV1,
        Method::SpecCascadeTokenV2,
        Method::SpecCascadeTokenV3,
        Method::Bild,
        Method::TokenCascadeChow,
        Method::OracleCascadeDiff,
        Method::SeqCascadeChow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Drafter => "drafter",
            Method::Verifier => "verifier",
            Method::SpecDecode => "spec_decode",
            Method::SpecDecodeLossy => "spec_decode_lossy",
            Method::SpecCascadeChow => "spec_cascade_chow",
            Method::SpecCascadeDiff => "spec_cascade_diff",
            Method::SpecCascadeOpt => "spec_cascade_opt",
            Method::SpecCascadeTokenV1 => "spec_cascade_token_v1",
            Method::SpecCascadeTokenV2 => "spec_cascade_token_v2",
            Method::SpecCascadeTokenV3 => "spec_cascade_token_v3",
            Method::Bild => "bild",
            Method::TokenCascadeChow => "token_cascade_chow",
            Method::OracleCascadeDiff => "oracle_cascade_diff",
            Method::SeqCascadeChow => "seq_cascade_chow",
        }
    }

    /// Parse a method name; the error lists the valid names.
    pub fn from_name(name: &str) -> Result<Self, DecodeError> {
        Self::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| DecodeError::UnknownMethod {
            name: name.to_string(),
            valid: Self::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        })
    }

    /// α's range, or `None` for methods without a parameter.
    pub fn alpha_range(self) -> Option<AlphaRange> {
        let r = |lo, hi| Some(AlphaRange { lo, hi, hi_open: false });
        match self {
            Method::Drafter | Method::Verifier | Method::SpecDecode => None,
            Method::SpecDecodeLossy => Some(AlphaRange { lo: 0.0, hi: 1.0, hi_open: true }),
            Method::SpecCascadeChow | Method::SpecCascadeTokenV3 | Method::Bild => r(0.0, 1.0),
            Method::TokenCascadeChow | Method::SeqCascadeChow => r(0.0, 1.0),
            Method::SpecCascadeDiff | Method::SpecCascadeTokenV1 | Method::SpecCascadeTokenV2 => r(-1.0, 1.0),
            Method::OracleCascadeDiff => r(-1.0, 1.0),
            Method::SpecCascadeOpt => r(f64::NEG_INFINITY, f64::INFINITY),
        }
    }

    /// Draft-and-verify methods (the block verifier with a deferral rule).
    pub fn is_speculative(self) -> bool {
        matches!(
            self,
            Method::SpecDecode
                | Method::SpecDecodeLossy
                | Method::SpecCascadeChow
                | Method::SpecCascadeDiff
                | Method::SpecCascadeOpt
                | Method::SpecCascadeTokenV1
                | Method::SpecCascadeTokenV2
                | Method::SpecCascadeTokenV3
                | Method::Bild
        )
    }

    /// Whether the method's cost is an oracle's (not achievable; label it in every plot).
    pub fn is_oracle(self) -> bool {
        self == Method::OracleCascadeDiff
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A method with its α, validated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSpec {
    pub method: Method,
    pub alpha: Option<f64>,
}

impl MethodSpec {
    /// Validate α against the method: required and in range for parametrised methods, absent
    /// otherwise.
    pub fn new(method: Method, alpha: Option<f64>) -> Result<Self, DecodeError> {
        match (method.alpha_range(), alpha) {
            (None, None) => Ok(Self { method, alpha }),
            (None, Some(a)) => Err(DecodeError::UnexpectedAlpha { method: method.name(), alpha: a }),
            (Some(range), None) => Err(DecodeError::MissingAlpha { method: method.name(), range: range.to_string() }),
            (Some(range), Some(a)) if range.contains(a) => Ok(Self { method, alpha }),
            (Some(range), Some(a)) => {
                Err(DecodeError::AlphaOutOfRange { method: method.name(), alpha: a, range: range.to_string() })
            }
        }
    }

    pub fn parse(name: &str, alpha: Option<f64>) -> Result<Self, DecodeError> {
        Self::new(Method::from_name(name)?, alpha)
    }

    /// The deferral rule of a speculative method (`None` for the others).
    pub fn rule(&self) -> Result<Option<Box<dyn DeferralRule>>, CoreError> {
        let a = self.alpha.unwrap_or(0.0);
        Ok(Some(match self.method {
            Method::SpecDecode => Box::new(LosslessRule),
            Method::SpecDecodeLossy => Box::new(LossyRule::new(a)?),
            Method::SpecCascadeChow => Box::new(ChowRule::new(a)?),
            Method::SpecCascadeDiff => Box::new(DiffRule::new(a)?),
            Method::SpecCascadeOpt => Box::new(OptRule::new(a)?),
            Method::SpecCascadeTokenV1 => Box::new(TokenV1Rule::new(a)?),
            Method::SpecCascadeTokenV2 => Box::new(TokenV2Rule::new(a)?),
            Method::SpecCascadeTokenV3 => Box::new(TokenV3Rule::new(a)?),
            Method::Bild => Box::new(BildRule::new(a)?),
            _ => return Ok(None),
        }))
    }

    /// A label such as `spec_cascade_opt(α=0.2)`.
    pub fn label(&self) -> String {
        match self.alpha {
            Some(a) => format!("{}(α={a})", self.method.name()),
            None => self.method.name().to_string(),
        }
    }
}
