//! The identity provider as this service sees it: its discovered metadata and signing keys
//! (fetched when first needed, the keys fetched again once when a token names a key they
//! lack: the provider has rotated them), the authorisation request, and the code exchange
//! with the ID token's checks (signature, issuer, audience, expiry, nonce).
use crate::config::OidcConfig;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    TokenResponse,
};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in through the provider did not complete.
#[derive(Debug)]
pub enum Failure {
    /// The provider could not be reached or answered nonsense: try again later.
    Unavailable(String),
    /// The provider, or its token, said no: the person is not signed in.
    Refused(String),
}

/// What the provider vouches for: its account (issuer + subject) and the token's claims.
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// Where to send the browser, and what to keep until it comes back.
pub struct Redirect {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

struct Discovered {
    metadata: ProviderMetadataWithLogout,
    keys: CoreJsonWebKeySet,
}

pub struct Provider {
    config: OidcConfig,
    http: reqwest::Client,
    discovered: RwLock<Option<Discovered>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Failure {
    // The error names a URL at most: never a code or a token.
    tracing::warn!(error = %e, "the sign-in service failed: {what}");
    Failure::Unavailable(what.to_string())
}

impl Provider {
    pub fn new(config: OidcConfig) -> Result<Provider, String> {
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer send us anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("the HTTP client for [oidc] cannot be built: {e}"))?;
        Ok(Provider {
            config,
            http,
            discovered: RwLock::new(None),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The provider's metadata and keys, discovered on first use (so that the service starts
    /// while the provider is down, and passwords still work then).
    async fn metadata(&self) -> Result<ProviderMetadataWithLogout, Failure> {
        if let Some(d) = self.discovered.read().await.as_ref() {
            return Ok(d.metadata.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| unavailable("the issuer URL is not a URL", e))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| unavailable("discovery", e))?;
        let keys = metadata.jwks().clone();
        *self.discovered.write().await = Some(Discovered {
            metadata: metadata.clone(),
            keys,
        });
        tracing::info!(issuer = %self.config.issuer, "the sign-in service's metadata fetched");
        Ok(metadata)
    }

    fn client(&self, metadata: ProviderMetadataWithLogout) -> Result<Client, Failure> {
        let redirect = RedirectUrl::new(self.config.redirect_url.clone())
            .map_err(|e| unavailable("the redirect URL is not a URL", e))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's authorisation URL for a new sign-in, with PKCE, state and nonce.
    pub async fn authorise(&self) -> Result<Redirect, Failure> {
        let client = self.client(self.metadata().await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Redirect {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code for tokens and checks the ID token.
    pub async fn redeem(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, Failure> {
        let client = self.client(self.metadata().await?)?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| unavailable("the provider names no token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => {
                    tracing::warn!(error = %r.error(), "the sign-in service refused the code");
                    Failure::Refused(
                        "the sign-in service did not accept this sign-in (it may have been used already)"
                            .into(),
                    )
                }
                other => unavailable("the token request", other),
            })?;
        let token = answer
            .id_token()
            .ok_or_else(|| Failure::Refused("the sign-in service sent no ID token".into()))?;
        let mut identity = self.check(token, nonce).await?;
        let c = &self.config;
        let wanted = [
            Some(&c.claim),
            Some(&c.name_claim),
            c.permissions_claim.as_ref(),
        ];
        if wanted
            .iter()
            .flatten()
            .any(|w| !identity.claims.contains_key(w.as_str()))
        {
            self.add_userinfo(&mut identity, answer.access_token().secret())
                .await?;
        }
        Ok(identity)
    }

    /// Claims the ID token lacks, from the userinfo endpoint (CIS2 gives `uid` there), when
    /// the provider has one: only for the same subject, never replacing the token's own.
    async fn add_userinfo(
        &self,
        identity: &mut Identity,
        access_token: &str,
    ) -> Result<(), Failure> {
        let metadata = self.metadata().await?;
        let Some(endpoint) = metadata.userinfo_endpoint() else {
            return Ok(());
        };
        let answer = self
            .http
            .get(endpoint.url().clone())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unavailable("the userinfo request", e))?;
        if !answer.status().is_success() {
            return Err(unavailable("the userinfo request", answer.status()));
        }
        let info: Map<String, Value> = answer
            .json()
            .await
            .map_err(|e| unavailable("the userinfo answer", e))?;
        if info.get("sub").and_then(Value::as_str) != Some(identity.subject.as_str()) {
            return Err(Failure::Refused(
                "the sign-in service's user information is about someone else".into(),
            ));
        }
        for (k, v) in info {
            identity.claims.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// Checks an ID token against the keys held, and once more against freshly fetched
    /// keys when it names a key they lack.
    async fn check(&self, token: &CoreIdToken, nonce: &str) -> Result<Identity, Failure> {
        let nonce = Nonce::new(nonce.to_string());
        match self.verify(token, &nonce).await? {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                self.refetch_keys().await?;
                self.verify(token, &nonce).await?.map_err(refused)
            }
            other => other.map_err(refused),
        }
    }

    async fn verify(
        &self,
        token: &CoreIdToken,
        nonce: &Nonce,
    ) -> Result<Result<Identity, ClaimsVerificationError>, Failure> {
        let guard = self.discovered.read().await;
        let d = guard
            .as_ref()
            .ok_or_else(|| Failure::Unavailable("discovery".into()))?;
        let client_id = ClientId::new(self.config.client_id.clone());
        let issuer = d.metadata.issuer().clone();
        // Expiry is checked against the system clock: the provider stamps its tokens by it.
        let verifier = match &self.config.client_secret {
            Some(s) => CoreIdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(s.clone()),
                issuer.clone(),
                d.keys.clone(),
            ),
            None => {
                CoreIdTokenVerifier::new_public_client(client_id, issuer.clone(), d.keys.clone())
            }
        };
        let claims = match token.claims(&verifier, nonce) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let subject = claims.subject().to_string();
        Ok(Ok(Identity {
            issuer: issuer.to_string(),
            subject,
            claims: payload(&token.to_string()),
        }))
    }

    async fn refetch_keys(&self) -> Result<(), Failure> {
        let metadata = self.metadata().await?;
        let keys = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| unavailable("the signing keys", e))?;
        if let Some(d) = self.discovered.write().await.as_mut() {
            d.keys = keys;
        }
        tracing::info!(
            "the sign-in service's signing keys fetched again (a key it named was unknown)"
        );
        Ok(())
    }

    /// Where to send a browser to sign out at the provider too, when it offers that.
    pub async fn end_session_url(&self) -> Option<String> {
        let metadata = self.metadata().await.ok()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let back = PostLogoutRedirectUrl::new(self.config.post_logout_url.clone()).ok()?;
        Some(
            LogoutRequest::from(endpoint)
                .set_client_id(ClientId::new(self.config.client_id.clone()))
                .set_post_logout_redirect_uri(back)
                .http_get_url()
                .to_string(),
        )
    }
}

/// Why a token was refused, in words for the page.
fn refused(e: ClaimsVerificationError) -> Failure {
    use ClaimsVerificationError as E;
    let why = match &e {
        E::Expired(_) => "the sign-in has expired",
        E::InvalidAudience(_) => "the sign-in was meant for another service",
        E::InvalidIssuer(_) => "the sign-in came from another identity service",
        E::InvalidNonce(_) => "the sign-in does not belong to the one started here",
        E::SignatureVerification(_) => "the sign-in's signature does not check out",
        _ => "the sign-in could not be checked",
    };
    tracing::warn!(error = %e, "ID token refused");
    Failure::Refused(why.into())
}

/// The claims of a token already verified, as JSON.
fn payload(jwt: &str) -> Map<String, Value> {
    use base64::Engine;
    jwt.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
