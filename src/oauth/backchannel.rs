//! Outbound HTTP to providers: timeouts, no redirects (a token endpoint answering 3xx is an
//! error, per the oauth2 crate's SSRF advice), a response size cap, and the status recorded so
//! failures can be classed as transient or permanent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

use super::quirks;
use crate::catalog::TokenResponseKind;

/// Token and revocation responses are small; anything bigger is refused.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("the response is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("the response could not be read: {0}")]
    Malformed(#[from] oauth2::http::Error),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("the response is not JSON")]
    NotJson,
}

async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, BackchannelError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(BackchannelError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Clone)]
pub struct Backchannel {
    client: reqwest::Client,
    /// For proxied API calls: no overall deadline (bodies may be large), but bounded connect and
    /// read stalls; never follows redirects either.
    streaming: reqwest::Client,
}

impl Backchannel {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("connect-appliance/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let streaming = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("connect-appliance/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Backchannel { client, streaming })
    }

    pub(crate) fn streaming(&self) -> &reqwest::Client {
        &self.streaming
    }

    /// POSTs a form, with HTTP Basic client authentication when `basic` is given (RFC 6749
    /// §2.3.1: id and secret form-urlencoded first). Returns the status; the body is discarded.
    pub async fn post_form(
        &self,
        url: &url::Url,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<u16, BackchannelError> {
        let mut request = self.client.post(url.clone()).form(form);
        if let Some((id, secret)) = basic {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(id), Some(enc(secret)));
        }
        let response = request.send().await?;
        Ok(response.status().as_u16())
    }

    /// A client for one token request; responses are normalised per `kind` (see `quirks`).
    pub(crate) fn recorder(&self, kind: TokenResponseKind) -> Recorder<'_> {
        Recorder {
            client: &self.client,
            status: AtomicU16::new(0),
            kind,
        }
    }

    /// Sends `request` and reads a JSON body of at most 1 MiB. Non-2xx statuses are errors.
    pub async fn json(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, BackchannelError> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = read_capped(response).await?;
        if !(200..300).contains(&status) {
            return Err(BackchannelError::Status(status));
        }
        serde_json::from_slice(&body).map_err(|_| BackchannelError::NotJson)
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// One request's client; remembers the HTTP status of the last response (0 when none).
pub(crate) struct Recorder<'a> {
    client: &'a reqwest::Client,
    status: AtomicU16,
    kind: TokenResponseKind,
}

impl Recorder<'_> {
    pub fn status(&self) -> u16 {
        self.status.load(Ordering::Relaxed)
    }
}

impl<'c, 'a: 'c> AsyncHttpClient<'c> for Recorder<'a> {
    type Error = BackchannelError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BackchannelError>> + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self.client.execute(request).await?;
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let status = response.status().as_u16();
            let mut builder = oauth2::http::Response::builder();
            for (name, value) in response.headers() {
                if name != reqwest::header::CONTENT_TYPE {
                    builder = builder.header(name, value);
                }
            }
            let body = read_capped(response).await?;
            let normalized = quirks::normalize(self.kind, status, &content_type, body);
            self.status.store(normalized.status, Ordering::Relaxed);
            let content_type = if normalized.is_json {
                "application/json"
            } else {
                content_type.as_str()
            };
            let body = normalized.body;
            builder = builder
                .status(normalized.status)
                .header(reqwest::header::CONTENT_TYPE, content_type);
            Ok(builder.body(body)?)
        })
    }
}
