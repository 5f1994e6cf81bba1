//! The endpoints other than `/update` (which is [`crate::update`]), one module per family:
//! [`files`] (static files, metadata payloads, xbuddy, file info), [`hosts`] (the host API),
//! [`builds`] (staging, latest build, control files, the builder) and [`status`] (steering,
//! health, metrics). Each handler takes typed extractors over [`crate::state::State`] and
//! returns an [`cibox_runtime::response::HttpResult`]; the route table is [`crate::router`].

pub mod builds;
pub mod files;
pub mod hosts;
pub mod status;
