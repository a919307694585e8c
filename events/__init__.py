"""Events out: every change of a reminder and every reply that needs a person, POSTed to the business's own
systems as Standard Webhooks, from the outbox PostgreSQL keeps."""
