# Step notifications: ingest, relay and step publish to one topic; a push subscription
# delivers each to the step function, with backoff between failed deliveries and, after the
# last, a move to the dead-letter topic, whose pull subscription keeps it for inspection.
#
# Why a push subscription and not the function's Eventarc trigger: Eventarc manages its own
# subscription, whose dead-letter policy and backoff Terraform cannot declare. A direct push
# subscription (Google's recommended Pub/Sub trigger for Cloud Run functions) declares both,
# and it is what the local stack does with the emulator. The step function is a
# `cloud_event` function: functions-framework turns the push body into the same
# `google.cloud.pubsub.topic.v1.messagePublished` CloudEvent Eventarc would send.

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "steps" {
  project = var.project_id
  name    = var.topic_name

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  project = var.project_id
  name    = var.dead_letter_topic_name

  depends_on = [google_project_service.apis]
}

# Keeps dead-lettered notifications (never expires while unused) so they can be read and replayed.
resource "google_pubsub_subscription" "dead_letter_kept" {
  project                    = var.project_id
  name                       = "${var.dead_letter_topic_name}-kept"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub signs each push with this account's OIDC token; it may invoke the step function only.
resource "google_service_account" "step_push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-step-push"
  display_name = "Pub/Sub push to the step function (${var.name_prefix})"
}

resource "google_pubsub_subscription" "step_push" {
  project = var.project_id
  name    = var.step_subscription_name
  topic   = google_pubsub_topic.steps.id

  # A delivery may take as long as the step function's timeout (a slow model call).
  ack_deadline_seconds = var.functions["step"].timeout_seconds

  push_config {
    push_endpoint = module.step.uri

    oidc_token {
      service_account_email = google_service_account.step_push.email
      audience              = module.step.uri
    }
  }

  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.pubsub_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  lifecycle {
    # A delivery stops chaining steps after STEP_BUDGET_SECONDS, but the step in flight may
    # still wait up to LLM_TIMEOUT_SECONDS for the model: both must end before the timeout.
    precondition {
      condition     = var.step_budget_seconds + var.llm_timeout_seconds <= var.functions["step"].timeout_seconds
      error_message = "step_budget_seconds + llm_timeout_seconds must not exceed the step function's timeout_seconds, or deliveries are cut off mid-step."
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_token_creator,
  ]
}

# Every function publishes notifications: ingest (fast path), relay (re-announcements), step (next step).
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = {
    ingest = module.ingest.service_account_email
    relay  = module.relay.service_account_email
    step   = module.step.service_account_email
  }

  project = var.project_id
  topic   = google_pubsub_topic.steps.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${each.value}"
}

# Dead-lettering is done by Pub/Sub's service agent: it publishes to the dead-letter topic
# and acknowledges on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.step_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Projects created before April 2021 need this for Pub/Sub to mint the push account's tokens.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.step_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
