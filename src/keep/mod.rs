//! Keep block storage (locators, signatures, volumes, the HTTP server): not yet written.
