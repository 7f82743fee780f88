//! speccascade-core: the mathematics of speculative cascades, independent of any model library.
//!
//! - [`model`]: the [`LanguageModel`] / [`Session`] trait that decoding drives and models implement.
//! - [`dist`]: next-token distributions and the sampling transform (temperature, top-p); the
//!   transformed `q`, `p` beside the untransformed `q̂`, `p̂` that deferral rules read.
//! - [`rules`]: one type per deferral rule / target of methods.md (`ChowRule`, `DiffRule`,
//!   `OptRule`, `TokenV1Rule` … `TokenV3Rule`, `BildRule`, `LossyRule`, `LosslessRule`).
//! - [`verify`]: the block verifier (accept / residual / bonus) as a pure function.
//! - [`rng`]: counter-based randomness.
//! - [`ledger`]: the cost ledger.
//!
//! # Randomness: common random numbers
//!
//! Every random draw is a pure function of **(run seed, example id, output position, purpose)**,
//! where the purpose is one of draft / accept / residual / bonus ([`rng::Purpose`]). Nothing carries
//! generator state. Consequently two methods — or one method at two values of α — decoding the same
//! example with the same seed use the same uniform for the same decision at the same position, and
//! their outputs agree token for token until their decisions differ. Comparisons between methods are
//! then paired (common random numbers, lower variance), and identical prefixes could share model
//! calls across a sweep. Checkable consequences (tested in `speccascade-decoding`):
//! `spec_cascade_diff` at α = −1 and `spec_decode_lossy` at α = 0 reproduce `spec_decode` (under the
//! same bonus mode); with the `exact` bonus, `spec_cascade_chow` at α = 1 reproduces `drafter`.
//!
//! A coin is read only where a decision is random: a draft accepted with probability 1 reads no
//! `Accept` uniform, so methods whose decisions are certain at a position stay in step.

pub mod alloc;
pub mod dist;
pub mod ledger;
pub mod model;
pub mod rng;
pub mod rules;
pub mod synthetic;
pub mod verify;

pub use dist::{Sampling, TokenDist, sample, tv};
pub use ledger::Ledger;
pub use model::{LanguageModel, Logits, ModelError, Session, TokenId, check_tokens};
pub use rng::{Purpose, Stream};
pub use rules::{
    AlphaRange, BildRule, ChowRule, DeferralRule, DiffRule, LosslessRule, LossyRule, MethodInfo, OptRule, Rule, Side,
    Target, TokenV1Rule, TokenV2Rule, TokenV3Rule,
};
pub use verify::{Block, BlockOutcome, Ending, PositionOutcome, verify_block};

/// Errors of the core: bad parameters and bad distributions.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter { name: String, value: String, expected: String },
    #[error("alpha = {alpha} is outside the range {range} of method {rule}")]
    AlphaOutOfRange { rule: &'static str, alpha: f64, range: String },
    #[error("method {method} takes no alpha (got {alpha})")]
    UnexpectedAlpha { method: &'static str, alpha: f64 },
    #[error("method {method} needs an alpha in {range}")]
    MissingAlpha { method: &'static str, range: String },
    #[error("bad distribution: {0}")]
    BadDistribution(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}
