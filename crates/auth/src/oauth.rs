//! OAuth 2.1 resource-server pieces: authorization-server metadata discovery (RFC 8414, with the
//! OpenID Connect discovery document as fallback), the protected-resource metadata document
//! (RFC 9728), and the `WWW-Authenticate` challenges that point clients to it.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ConfigError;
#[cfg(feature = "jwks")]
use crate::fetch::{get_capped, validate_fetch_url};
use crate::scopes::AppScope;

/// Largest authorization-server metadata document accepted.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The path of the RFC 9728 document.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource";

/// What quietbox needs from the authorization server's metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier (must equal the configured issuer).
    pub issuer: String,
    /// Where its signing keys are.
    pub jwks_uri: String,
}

/// The RFC 9728 protected-resource metadata document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// This resource's identifier (`MCP_RESOURCE_URL`).
    pub resource: String,
    /// Authorization servers that issue tokens for it.
    pub authorization_servers: Vec<String>,
    /// Scopes it understands.
    pub scopes_supported: Vec<String>,
    /// How to present tokens.
    pub bearer_methods_supported: Vec<String>,
}

impl ProtectedResourceMetadata {
    /// The document for `resource`, protected by `issuer`; `scopes_supported` lists every scope
    /// of `S`, in declaration order.
    pub fn new<S: AppScope>(resource: &str, issuer: &str) -> Self {
        ProtectedResourceMetadata {
            resource: resource.to_owned(),
            authorization_servers: vec![issuer.to_owned()],
            scopes_supported: S::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
            bearer_methods_supported: vec!["header".to_owned()],
        }
    }
}

/// `<origin of resource>/.well-known/oauth-protected-resource`, as the MCP authorization spec
/// asks servers to advertise in their 401 challenge.
pub fn resource_metadata_url(resource: &str) -> Result<String, ConfigError> {
    let url = Url::parse(resource)
        .map_err(|e| ConfigError::Invalid("MCP_RESOURCE_URL", format!("{resource:?}: {e}")))?;
    let origin = url.origin().ascii_serialization();
    Ok(format!("{origin}{PROTECTED_RESOURCE_PATH}"))
}

/// Fetches the issuer's metadata: RFC 8414 first, then OpenID discovery. The document's `issuer`
/// must equal the configured one exactly (RFC 8414 §3.3; a trailing slash is a difference), or
/// a look-alike server could redirect trust: a mismatch is [`ConfigError::IssuerMismatch`],
/// naming both values. The issuer and the document's `jwks_uri` must pass
/// [`validate_fetch_url`]; documents are capped at
/// [`MAX_METADATA_BYTES`] while they stream.
#[cfg(feature = "jwks")]
pub async fn discover(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<AuthorizationServerMetadata, ConfigError> {
    let base = validate_fetch_url(issuer).map_err(|e| ConfigError::Discovery {
        url: issuer.to_owned(),
        detail: e.to_string(),
    })?;
    let path = base.path().trim_end_matches('/');
    let origin = base.origin().ascii_serialization();
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ];
    let mut last_error = String::from("no metadata document found");
    for candidate in candidates {
        match fetch_metadata(client, &candidate).await {
            Ok(metadata) => {
                if metadata.issuer != issuer {
                    return Err(ConfigError::IssuerMismatch {
                        url: candidate,
                        configured: issuer.to_owned(),
                        discovered: metadata.issuer,
                    });
                }
                if let Err(error) = validate_fetch_url(&metadata.jwks_uri) {
                    return Err(ConfigError::Discovery {
                        url: candidate,
                        detail: format!("jwks_uri: {error}"),
                    });
                }
                return Ok(metadata);
            }
            Err(error) => last_error = format!("{candidate}: {error}"),
        }
    }
    Err(ConfigError::Discovery {
        url: issuer.to_owned(),
        detail: last_error,
    })
}

#[cfg(feature = "jwks")]
async fn fetch_metadata(
    client: &reqwest::Client,
    url: &str,
) -> Result<AuthorizationServerMetadata, String> {
    let body = get_capped(
        client,
        url,
        MAX_METADATA_BYTES,
        std::time::Duration::from_secs(10),
    )
    .await
    .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("not authorization server metadata: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_uses_the_origin_of_the_resource() {
        assert_eq!(
            resource_metadata_url("https://mcp.example.com:8443/mcp").unwrap(),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource"
        );
    }

    use crate::scopes::test_scopes::Notes;

    #[test]
    fn the_document_lists_the_application_scopes() {
        let doc = ProtectedResourceMetadata::new::<Notes>(
            "https://notes.example.com/api",
            "https://idp.example.com",
        );
        assert_eq!(
            doc.scopes_supported,
            vec!["notes:read", "notes:write", "notes:share"]
        );
        assert_eq!(doc.authorization_servers, vec!["https://idp.example.com"]);
    }
}
