//! The method catalogue: every method of methods.md, declared once, and the bonus modes.
//!
//! One line per method. A speculative method names its rule type, which declares its name, label
//! and α range ([`speccascade_core::Rule::INFO`]); a method without a block verifier declares its
//! entry on its line. Everything else derives from here: parsing and serde (the name), the CLI's
//! value enum (feature `clap`), YAML validation, the harness's records, the report's labels, order
//! (the catalogue's order, that of methods.md) and colours (indexed by that order).
//!
//! Adding a rule: write the type (a [`DeferralRule`] with a [`Rule`] impl) in core's `rules.rs`,
//! and add one line `MyMethod => rule(MyRule),` below.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use speccascade_core::rules::*;
use speccascade_core::{CoreError, DeferralRule};

use crate::DecodeError;

macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident => $kind:ident $args:tt),* $(,)?) => {
        /// Every decoding method of the paper and its baselines, in the order of methods.md.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Method {
            $($(#[$doc])* $variant),*
        }

        impl Method {
            /// Every method, in catalogue order (the order of tables and legends).
            pub const ALL: [Method; catalogue!(@count $($variant)*)] = [$(Method::$variant),*];

            /// The method's catalogue entry: name, label, α range.
            pub const fn info(self) -> MethodInfo {
                match self {
                    $(Method::$variant => catalogue!(@info $kind $args)),*
                }
            }

            /// Draft-and-verify methods (the block verifier with a deferral rule; γ applies).
            pub const fn is_speculative(self) -> bool {
                match self {
                    $(Method::$variant => catalogue!(@speculative $kind)),*
                }
            }

            /// Whether the method's target is p everywhere (lossless speculative decoding).
            const fn target_is_verifier(self) -> bool {
                match self {
                    $(Method::$variant => catalogue!(@lossless $kind $args)),*
                }
            }

            fn build_rule(self, alpha: Option<f64>) -> Result<Option<Box<dyn DeferralRule>>, CoreError> {
                match self {
                    $(Method::$variant => catalogue!(@rule $kind $args alpha)),*
                }
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + catalogue!(@count $($tail)*) };
    (@info rule ($t:ty)) => { <$t as Rule>::INFO };
    (@info sequential ($name:literal, $label:literal, $alpha:expr)) => {
        MethodInfo { name: $name, label: $label, alpha: $alpha }
    };
    (@speculative rule) => { true };
    (@speculative sequential) => { false };
    (@lossless rule ($t:ty)) => { <$t as Rule>::TARGET_IS_VERIFIER };
    (@lossless sequential $args:tt) => { false };
    (@rule rule ($t:ty) $a:ident) => { Ok(Some(Box::new(<$t as Rule>::new_checked($a)?))) };
    (@rule sequential $args:tt $a:ident) => { Ok(None) };
}

catalogue! {
    /// The drafter alone, autoregressive.
    Drafter => sequential("drafter", "drafter alone", None),
    /// The verifier alone, autoregressive.
    Verifier => sequential("verifier", "verifier alone", None),
    SpecDecode => rule(LosslessRule),
    SpecDecodeLossy => rule(LossyRule),
    SpecCascadeChow => rule(ChowRule),
    SpecCascadeDiff => rule(DiffRule),
    SpecCascadeOpt => rule(OptRule),
    SpecCascadeTokenV1 => rule(TokenV1Rule),
    SpecCascadeTokenV2 => rule(TokenV2Rule),
    SpecCascadeTokenV3 => rule(TokenV3Rule),
    Bild => rule(BildRule),
    /// Paper Alg. 2: per token, Chow's rule on the drafter; a deferral is a sequential verifier call.
    TokenCascadeChow => sequential("token_cascade_chow", "TokenCascade [Chow]", ChowRule::INFO.alpha),
    /// Paper Alg. 3: both models everywhere, the Diff rule, charged as if the verifier ran only at
    /// deferrals (an oracle).
    OracleCascadeDiff => sequential("oracle_cascade_diff", "Oracle cascade [Diff] (oracle)", DiffRule::INFO.alpha),
    /// Whole-sequence deferral on the drafter's geometric-mean confidence.
    SeqCascadeChow => sequential("seq_cascade_chow", "SeqCascade [Chow]", Some(AlphaRange::closed(0.0, 1.0))),
}

impl Method {
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The label of tables and figure legends.
    pub fn label(self) -> &'static str {
        self.info().label
    }

    /// α's range, or `None` for methods without a parameter.
    pub fn alpha_range(self) -> Option<AlphaRange> {
        self.info().alpha
    }

    /// Position in [`Method::ALL`] (order of tables and legends; index of the report's palette).
    pub fn rank(self) -> usize {
        Self::ALL.iter().position(|&m| m == self).expect("every method is in ALL")
    }

    /// Parse a method name; the error lists the valid names.
    pub fn from_name(name: &str) -> Result<Self, DecodeError> {
        Self::ALL.iter().copied().find(|m| m.name() == name).ok_or_else(|| DecodeError::UnknownMethod {
            name: name.to_string(),
            valid: Self::names().join(", "),
        })
    }

    /// Every method's name, in catalogue order.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|m| m.name()).collect()
    }

    /// Whether the method's cost is an oracle's (not achievable; label it in every plot).
    pub fn is_oracle(self) -> bool {
        self == Method::OracleCascadeDiff
    }

    /// The default bonus mode (methods.md, step 4): `free` where the target is p (it agrees with
    /// `exact` in distribution and saves a drafter step), `exact` for every other method, so that
    /// every emitted token follows π.
    pub fn default_bonus(self) -> Bonus {
        if self.target_is_verifier() { Bonus::Free } else { Bonus::Exact }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Compare with a name (`method == "verifier"`).
impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl std::str::FromStr for Method {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, DecodeError> {
        Self::from_name(s)
    }
}

/// Serialised as its catalogue name (`"spec_cascade_chow"`).
impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Method::from_name(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for Method {
    fn value_variants<'a>() -> &'a [Self] {
        &Method::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.label()))
    }
}

/// What follows a fully accepted block (methods.md, step 4; the ledger's module doc gives each
/// mode's cost).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Bonus {
    /// Sample the bonus from p (Leviathan et al.): exact only where π = p.
    Free,
    /// Verify the bonus position like the others (one more drafter step): exact for every π.
    Exact,
    /// No bonus; the next block starts at the next position (Google's notebook).
    None,
}

impl Bonus {
    pub const ALL: [Bonus; 3] = [Bonus::Free, Bonus::Exact, Bonus::None];
    pub fn name(self) -> &'static str {
        match self {
            Bonus::Free => "free",
            Bonus::Exact => "exact",
            Bonus::None => "none",
        }
    }
}

impl std::fmt::Display for Bonus {
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
    /// Validate α against the method ([`MethodInfo::check_alpha`]): required and in range for
    /// parametrised methods, absent otherwise.
    pub fn new(method: Method, alpha: Option<f64>) -> Result<Self, DecodeError> {
        method.info().check_alpha(alpha)?;
        Ok(Self { method, alpha })
    }

    pub fn parse(name: &str, alpha: Option<f64>) -> Result<Self, DecodeError> {
        Self::new(Method::from_name(name)?, alpha)
    }

    /// The deferral rule of a speculative method (`None` for the others).
    pub fn rule(&self) -> Result<Option<Box<dyn DeferralRule>>, CoreError> {
        self.method.build_rule(self.alpha)
    }

    /// A label such as `spec_cascade_opt(α=0.2)`.
    pub fn label(&self) -> String {
        match self.alpha {
            Some(a) => format!("{}(α={a})", self.method.name()),
            None => self.method.name().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        let names = Method::names();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "method names are unique");
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()).unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.name()));
            assert_eq!(m.is_speculative(), m.rule_for_test().is_some(), "{m}");
            assert_eq!(m.default_bonus(), if m == Method::SpecDecode { Bonus::Free } else { Bonus::Exact }, "{m}");
        }
        assert_eq!(Method::Bild.alpha_range().unwrap().to_string(), "[0, inf)");
        assert!(MethodSpec::parse("bild", Some(3.0)).is_ok());
        assert!(MethodSpec::parse("bild", Some(-1.0)).is_err());
        assert!(MethodSpec::parse("verifier", Some(0.1)).is_err());
        assert!(MethodSpec::parse("spec_cascade_chow", None).is_err());
        assert!(serde_json::from_str::<Method>("\"nope\"").unwrap_err().to_string().contains("valid methods"));
    }

    impl Method {
        fn rule_for_test(self) -> Option<Box<dyn DeferralRule>> {
            let a = self.alpha_range().map(|r| if r.contains(0.5) { 0.5 } else { r.lo });
            self.build_rule(a).unwrap()
        }
    }
}
