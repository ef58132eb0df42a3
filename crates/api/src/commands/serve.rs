//! `csbs-api serve`: run the service until SIGINT or SIGTERM.

use crate::settings::Settings;
use crate::startup::Application;

/// Builds and runs the service; returns when it has shut down.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let application = Application::build(settings)?;
        tracing::info!(port = application.port(), "csbs-api is serving");
        application.run_until_stopped().await?;
        tracing::info!("csbs-api stopped");
        Ok(())
    })
}
