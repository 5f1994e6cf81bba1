//! Who calls and with what: the authenticated [`Caller`] (token, user, what it may reach)
//! and one [`Call`] (the store, the parameters, the body, the signing key).

use serde_json::Value;

use crate::api::permissions::Access;
use crate::api::query::Params;
use crate::api::state::Store;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token record.
    pub token: Value,
    /// The token's secret (what locators are signed with).
    pub secret: String,
    /// The user record.
    pub user: Value,
    /// What the user may read, write and manage.
    pub access: Access,
}

impl Caller {
    /// The user's uuid.
    pub fn uuid(&self) -> &str {
        self.user["uuid"].as_str().unwrap_or_default()
    }

    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.user["is_admin"] == true
    }

    /// Whether the user is active.
    pub fn is_active(&self) -> bool {
        self.user["is_active"] == true
    }

    /// Whether the token has every scope (`all`), rather than a few paths.
    pub fn full_scope(&self) -> bool {
        self.token["scopes"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "all"))
    }
}

/// One call: the store, the caller, the parameters, the body and the signing key.
pub struct Call<'a> {
    /// The records.
    pub store: &'a mut Store,
    /// Who calls.
    pub caller: Caller,
    /// Query (and form) parameters.
    pub params: Params,
    /// The JSON body, when one was sent.
    pub body: Option<Value>,
    /// The cluster's blob signing key (the keepstores' when they have one).
    pub key: Vec<u8>,
    /// Signatures are enforced (`start_keep`'s keepstores enforce them): a
    /// non-admin's manifest must carry valid signatures.
    pub enforce: bool,
    /// `X-External-Client: 1` was sent (the caller is outside the cluster: give it proxies).
    pub external: bool,
}
