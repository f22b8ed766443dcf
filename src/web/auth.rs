//! Who is calling: `Authorization: Bearer <token>`, looked up by the token's hash.
use super::AppState;
use crate::error::AppError;
use crate::store::directory::{self, Staff};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

/// The authenticated member of staff making the request.
pub struct Caller(pub Staff);

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|h| h.to_str().map(str::to_string));
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Internal("no app state".into()))?;
            let token = match header {
                None => {
                    return Err(AppError::Unauthorized(
                        "sign in: send Authorization: Bearer <token>".into(),
                    ))
                }
                Some(Err(_)) => {
                    return Err(AppError::Unauthorized(
                        "the Authorization header is not readable text".into(),
                    ))
                }
                Some(Ok(h)) => match h.split_once(' ') {
                    Some((scheme, t))
                        if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() =>
                    {
                        t.trim().to_string()
                    }
                    _ => {
                        return Err(AppError::Unauthorized(
                            "the Authorization header must be: Bearer <token>".into(),
                        ))
                    }
                },
            };
            let staff = state
                .store
                .read(move |c| directory::staff_by_token(c, &token))
                .await?;
            staff.map(Caller).ok_or_else(|| {
                AppError::Unauthorized(
                    "the token is not valid (mistyped, replaced or the account is inactive)".into(),
                )
            })
        })
    }
}
