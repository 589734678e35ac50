# Cloud Scheduler calls the relay, which re-announces every thread that needs a step
# (including claims whose lease ran out). Each call carries an OIDC token of the relay's
# invoker account, the only member allowed to invoke it.
resource "google_cloud_scheduler_job" "relay" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-relay"
  description      = "Sweeps the thread categories and republishes what needs a step."
  schedule         = var.relay_schedule
  time_zone        = var.relay_time_zone
  attempt_deadline = "${var.functions["relay"].timeout_seconds}s"

  retry_config {
    retry_count          = 0 # the next run sweeps from the same stored position
    min_backoff_duration = "5s"
    max_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = module.relay.uri

    oidc_token {
      service_account_email = google_service_account.relay_scheduler.email
      audience              = module.relay.uri
    }
  }

  depends_on = [google_project_service.apis]
}
