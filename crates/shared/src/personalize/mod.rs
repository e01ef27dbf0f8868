//! The personalization feature's business rules, as plain Rust over plain types: no AWS, no
//! HTTP. The worker and the preview route wire these to Klaviyo and Bedrock.
//!
//! - `orders`: Klaviyo order events (every shape) → a bounded `PurchaseHistory`.
//! - `candidates`: the products to recommend, from a `CatalogIndex` built once per batch.
//! - `settings`: the merchant's brand voice, language and slots.
//! - `prompt`: the Converse request content (static prefix, brief, tool schema, per profile).
//! - `offer`: the offer a run or flow may state, as fields next to the free-text brief.
//! - `copy` + `grounding`: the model's tool input → the grounding gate → Klaviyo `sp_` properties.
//! - `properties`: the named property set a run writes (copy, or cleared, plus run and outcome).
//! - `accounting`: outcomes, run counters, run states, the holdout split and the cost.

pub mod accounting;
pub mod candidates;
pub mod copy;
pub mod grounding;
pub mod offer;
pub mod orders;
pub mod prompt;
pub mod properties;
pub mod run;
pub mod settings;
mod text;

pub use accounting::{
    can_transition, holdout_group, Cost, FailReason, Group, ModelPrices, Outcome, RunCounts,
    RunState, SkipReason,
};
pub use candidates::{
    choose_candidates, ineligibility, is_eligible, Candidates, CatalogIndex, Ineligibility,
    Strategy,
};
pub use copy::{
    missing_profiles, parse_tool_output, GeneratedCopy, OutputError, RenderedProduct, ValidCopy,
};
pub use grounding::{
    repair_message, validate, Concept, Finding, PersonalData, PersonalKind, Slot, TitleIndex,
    ValidationContext,
};
pub use offer::{Offer, OfferKind};
pub use orders::{
    parse_event, HistoryBounds, OrderEvent, OrderMetric, PurchaseHistory, PurchasedItem,
};
pub use prompt::{batch_user_message, ProductPrompt, ProfilePrompt, PromptParts, TOOL_NAME};
pub use properties::{outcome_label, PropertySet};
pub use settings::{BrandVoice, Settings, SlotLimit, Slots};
pub use text::price_text;
