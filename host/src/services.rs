//! The services a session authenticates with, and the live set a reload
//! replaces. Protocols see only this, never how it was assembled.

use std::sync::{Arc, RwLock};

use crate::portal::Portal;
use crate::sasl::Mechanisms;

/// Everything a protocol needs to authenticate users.
pub struct Services {
    pub portal: Arc<Portal>,
    pub mechanisms: Arc<Mechanisms>,
}

/// The services sessions use now. A reload replaces them as a whole: an
/// exchange or avatar already running keeps the plugins it started with
/// (it holds their `Arc`s), new ones get the new set.
pub struct Live(RwLock<Arc<Services>>);

impl Live {
    pub fn new(services: Services) -> Arc<Live> {
        Arc::new(Live(RwLock::new(Arc::new(services))))
    }

    /// The current services.
    pub fn get(&self) -> Arc<Services> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, services: Services) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(services);
    }
}
