from django.db import migrations

# Consent records are evidence: PostgreSQL refuses changes to what a record says and refuses
# deletes, whoever asks (the admin, a shell, raw SQL). Two things may change: which profile the
# record belongs to (merges and unmerges move it with its identifier) and the raw event link (set
# to NULL when retention purges raw events). A privacy request's purge of a deleted person is the
# one exception, allowed by a transaction-local setting (SET LOCAL cdp.privacy_purge = 'on').
GUARD = """
CREATE OR REPLACE FUNCTION cdp_consent_append_only() RETURNS trigger AS $$
BEGIN
    IF current_setting('cdp.privacy_purge', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE'
       AND NEW.purpose IS NOT DISTINCT FROM OLD.purpose
       AND NEW.is_granted IS NOT DISTINCT FROM OLD.is_granted
       AND NEW.source_id IS NOT DISTINCT FROM OLD.source_id
       AND NEW.captured_at IS NOT DISTINCT FROM OLD.captured_at
       AND NEW.recorded_at IS NOT DISTINCT FROM OLD.recorded_at
       AND NEW.scope IS NOT DISTINCT FROM OLD.scope
       AND NEW.evidence IS NOT DISTINCT FROM OLD.evidence THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consent_consentrecord is append-only: changes and deletes are refused';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER cdp_consent_append_only BEFORE UPDATE OR DELETE ON consent_consentrecord
    FOR EACH ROW EXECUTE FUNCTION cdp_consent_append_only();
"""
UNGUARD = """
DROP TRIGGER IF EXISTS cdp_consent_append_only ON consent_consentrecord;
DROP FUNCTION IF EXISTS cdp_consent_append_only();
"""


def guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD)


def unguard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNGUARD)


class Migration(migrations.Migration):
    dependencies = [("consent", "0003_tombstone")]
    operations = [migrations.RunPython(guard, unguard)]
