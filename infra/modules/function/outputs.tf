output "uri" {
  description = "HTTPS endpoint of the function (its Cloud Run service URI)."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "function_name" {
  description = "The deployed function's name."
  value       = google_cloudfunctions2_function.this.name
}

output "service_account_email" {
  description = "The function's own service account."
  value       = google_service_account.this.email
}

output "db_user" {
  description = "The function's IAM database user (what DB_IAM_USER is set to)."
  value       = google_sql_user.iam.name
}
