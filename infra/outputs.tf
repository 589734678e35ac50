output "ingest_url" {
  description = "Base URL of the ingest API (POST /v1/threads, GET /healthz)."
  value       = module.ingest.uri
}

output "relay_url" {
  description = "The relay's endpoint (called by Cloud Scheduler only)."
  value       = module.relay.uri
}

output "step_url" {
  description = "The step function's endpoint (called by the Pub/Sub push subscription only)."
  value       = module.step.uri
}

output "topic" {
  description = "Topic of step notifications (PUBSUB_TOPIC)."
  value       = google_pubsub_topic.steps.name
}

output "dead_letter_topic" {
  description = "Topic failed notifications move to."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Pull subscription keeping dead-lettered notifications."
  value       = google_pubsub_subscription.dead_letter_kept.name
}

output "sql_connection_name" {
  description = "Cloud SQL instance connection name (CLOUD_SQL_INSTANCE), project:region:instance."
  value       = google_sql_database_instance.main.connection_name
}

output "installer_job" {
  description = "Cloud Run job installing Message DB: gcloud run jobs execute <this> --region <region> --wait."
  value       = google_cloud_run_v2_job.messagedb_install.name
}

output "jwt_hs256_secret" {
  description = "Secret Manager secret holding the HS256 key front ends sign their JWTs with."
  value       = google_secret_manager_secret.jwt_hs256_secret.secret_id
}

output "function_service_accounts" {
  description = "Each function's service account (its IAM database user is this without .gserviceaccount.com)."
  value = {
    ingest = module.ingest.service_account_email
    relay  = module.relay.service_account_email
    step   = module.step.service_account_email
  }
}

output "connection_budget" {
  description = "Worst-case pooled connections (sum of max instances × pool size) plus headroom, against max_connections."
  value = {
    pooled          = local.pooled_connections
    with_headroom   = local.connection_budget
    max_connections = var.db_max_connections
  }
}

output "archive_url" {
  description = "ARCHIVE_URL for `messagedb-agent archive`: where idle threads are exported."
  value       = "gs://${google_storage_bucket.archive.name}/threads"
}
