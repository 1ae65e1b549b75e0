"""Server-side jobs run from cron (`fieldsync jobs …`): idempotent, through the write path."""
