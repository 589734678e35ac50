# Secrets the functions read as environment variables (latest version at instance start).
# Each starts with a generated value; rotate with `gcloud secrets versions add`.

locals {
  # Environment variable => secret, per function. Each function's service account is
  # granted exactly these (see modules/function).
  ingest_secrets = {
    JWT_HS256_SECRET = google_secret_manager_secret.jwt_hs256_secret.secret_id
  }
  relay_secrets = {}
  step_secrets = {
    CALLBACK_SIGNING_SECRET = google_secret_manager_secret.callback_signing_secret.secret_id
  }
}

resource "google_secret_manager_secret" "jwt_hs256_secret" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-jwt-hs256-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "random_password" "jwt_hs256_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "jwt_hs256_secret" {
  secret      = google_secret_manager_secret.jwt_hs256_secret.id
  secret_data = random_password.jwt_hs256_secret.result
}

resource "google_secret_manager_secret" "callback_signing_secret" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-callback-signing-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "random_password" "callback_signing_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "callback_signing_secret" {
  secret      = google_secret_manager_secret.callback_signing_secret.id
  secret_data = random_password.callback_signing_secret.result
}

resource "google_secret_manager_secret" "db_admin_password" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-db-admin-password"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "db_admin_password" {
  secret      = google_secret_manager_secret.db_admin_password.id
  secret_data = random_password.db_admin.result
}
