# Secrets the functions read as environment variables (latest version at instance start).
# Each starts with a value generated for one apply (an ephemeral resource) and written through
# the write-only `secret_data_wo`, so no secret is in the plan or the state (Terraform 1.11+:
# https://developer.hashicorp.com/terraform/language/resources/ephemeral/write-only). Terraform
# writes a new value only when the matching *_version variable changes; rotate by bumping it,
# or with `gcloud secrets versions add` (Terraform does not read values back).

locals {
  # Environment variable => secret, per function. Each function's service account is
  # granted exactly these (see modules/function).
  # A chat platform's secrets are mounted only once it is enabled (`slack_enabled`,
  # `telegram_enabled`; functions.tf filters them out before), since a function cannot start
  # on a secret that has no version yet.
  ingest_secrets = {
    JWT_HS256_SECRET        = google_secret_manager_secret.jwt_hs256_secret.secret_id
    SLACK_SIGNING_SECRET    = google_secret_manager_secret.slack_signing_secret.secret_id
    SLACK_BOT_TOKEN         = google_secret_manager_secret.slack_bot_token.secret_id
    TELEGRAM_WEBHOOK_SECRET = google_secret_manager_secret.telegram_webhook_secret.secret_id
    TELEGRAM_BOT_TOKEN      = google_secret_manager_secret.telegram_bot_token.secret_id
  }
  relay_secrets = {}
  step_secrets = {
    CALLBACK_SIGNING_SECRET = google_secret_manager_secret.callback_signing_secret.secret_id
    SLACK_BOT_TOKEN         = google_secret_manager_secret.slack_bot_token.secret_id
    TELEGRAM_BOT_TOKEN      = google_secret_manager_secret.telegram_bot_token.secret_id
  }
  channel_secret_prefixes = concat(
    var.slack_enabled ? [] : ["SLACK_"],
    var.telegram_enabled ? [] : ["TELEGRAM_"],
  )
}

# Slack's secrets come from the Slack app, not from Terraform: they are created empty here and
# given their values with `gcloud secrets versions add` (infra/README.md, "Connect Slack").
resource "google_secret_manager_secret" "slack_signing_secret" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-slack-signing-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "slack_bot_token" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-slack-bot-token"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# Telegram's too: the bot token from @BotFather, and the webhook secret the operator chooses and
# gives to setWebhook (infra/README.md, "Connect Telegram").
resource "google_secret_manager_secret" "telegram_bot_token" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-telegram-bot-token"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "telegram_webhook_secret" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-telegram-webhook-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "jwt_hs256_secret" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-jwt-hs256-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

ephemeral "random_password" "jwt_hs256_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "jwt_hs256_secret" {
  secret                 = google_secret_manager_secret.jwt_hs256_secret.id
  secret_data_wo         = ephemeral.random_password.jwt_hs256_secret.result
  secret_data_wo_version = var.jwt_hs256_secret_version
}

resource "google_secret_manager_secret" "callback_signing_secret" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-callback-signing-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

ephemeral "random_password" "callback_signing_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "callback_signing_secret" {
  secret                 = google_secret_manager_secret.callback_signing_secret.id
  secret_data_wo         = ephemeral.random_password.callback_signing_secret.result
  secret_data_wo_version = var.callback_signing_secret_version
}

resource "google_secret_manager_secret" "db_admin_password" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-db-admin-password"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# The same value as google_sql_user.admin's password_wo in the same apply (sql.tf), and the
# same version variable: the two change together or not at all.
resource "google_secret_manager_secret_version" "db_admin_password" {
  secret                 = google_secret_manager_secret.db_admin_password.id
  secret_data_wo         = ephemeral.random_password.db_admin.result
  secret_data_wo_version = var.db_admin_password_version
}
