//! Pure logic: no I/O, no HTTP, no SQL. "Now" is always an argument.
pub mod delivery;
pub mod escalation;
pub mod health;
pub mod icalendar;
pub mod nhs_number;
pub mod phone;
pub mod rota;
pub mod staff;
pub mod task;
pub mod timeline;
pub mod transition;

pub use nhs_number::NhsNumber;
pub use staff::Permission;
pub use task::{Action, Assignee, Category, NewTask, News2, OutcomeCode, Priority, Status, Task};

/// Makes an enum that is stored and sent as a fixed set of lowercase codes.
macro_rules! coded_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            pub fn parse(code: &str) -> Result<Self, String> {
                match code {
                    $($code => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {:?}: expected one of {}",
                        $what,
                        other,
                        [$($code),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }

        /// Described in the API's OpenAPI document as a string with these codes.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($code),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let code = String::deserialize(d)?;
                $name::parse(&code).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use coded_enum;
