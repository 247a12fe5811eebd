//! Outbound HTTP to providers: timeouts, no redirects (a token endpoint answering 3xx is an
//! error, per the oauth2 crate's SSRF advice), a response size cap, and the status recorded so
//! failures can be classed as transient or permanent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

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

    pub(crate) fn recorder(&self) -> Recorder<'_> {
        Recorder {
            client: &self.client,
            status: AtomicU16::new(0),
        }
    }
}

/// One request's client; remembers the HTTP status of the last response (0 when none).
pub(crate) struct Recorder<'a> {
    client: &'a reqwest::Client,
    status: AtomicU16,
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
            self.status
                .store(response.status().as_u16(), Ordering::Relaxed);
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(BackchannelError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(builder.body(body)?)
        })
    }
}
