//! weft-core: the domain shared by weft's master, agents and CLI.
//!
//! # Modules
//!
//! - [`artifact`]: the content-addressed artifact store. User code ships as WebAssembly
//!   components addressed by their blake3 [`Digest`](artifact::Digest); this module
//!   stores them ([`ArtifactStore`](artifact::ArtifactStore)), names them by URI
//!   ([`ArtifactUri`](artifact::ArtifactUri): `blake3:`, `file://`, `s3://`,
//!   `http(s)://`), fetches and verifies them ([`Resolver`](artifact::Resolver)) and
//!   caches them on agents ([`ArtifactCache`](artifact::ArtifactCache)).

pub mod artifact;
