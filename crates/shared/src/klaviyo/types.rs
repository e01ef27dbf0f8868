use serde::{Deserialize, Serialize};

/// The Klaviyo account a key belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    /// `attributes.contact_information.organization_name`.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudienceKind {
    List,
    Segment,
}

impl AudienceKind {
    /// The path segment under `/api/`.
    pub fn path(self) -> &'static str {
        match self {
            AudienceKind::List => "lists",
            AudienceKind::Segment => "segments",
        }
    }
}

/// A list or segment a merchant can personalise for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    pub id: String,
    pub name: String,
    pub kind: AudienceKind,
}

/// The read scopes the product needs; `probe_read_scopes` reports the missing ones.
pub const READ_SCOPES: [&str; 5] = ["lists:read", "segments:read", "profiles:read", "events:read", "metrics:read"];
