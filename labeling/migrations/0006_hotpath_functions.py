"""The labeling hot path as two PostgreSQL functions: one round trip for next, one for submit.

`labeling_next` and `labeling_submit` do, statement for statement, what
labeling/services/assignments.py's PostgreSQL path did in five and three round trips (labeler
lock, live lease, expiry, lease; lookup, checks, write), inside one function call: the calls run
as single statements (autocommit, no BEGIN/COMMIT round trips) and PL/pgSQL keeps each
statement's plan for the connection. The service module documents the rules; its ORM path
(SQLite) stays the reference the tests hold both paths to. Other databases: nothing to do.
"""
from django.conf import settings
from django.db import migrations

NEXT_SQL = """
CREATE OR REPLACE FUNCTION labeling_next(
    p_project bigint, p_slug text, p_labeler bigint, p_research boolean, p_now timestamptz, p_lease interval)
RETURNS TABLE (outcome text, project_id bigint, assignment_id bigint, comparison_id bigint, display_order jsonb,
               leased_at timestamptz, expires_at timestamptz, slot integer, sample_id bigint, sample_text text,
               query_id bigint, context text, reference text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_project bigint;
    v_k integer;
    v_share double precision;
    v_lease bigint;
    v_comparison bigint;
    v_pools boolean[];
    v_first boolean;
    v_wait boolean;
    v_calibration boolean;
    v_order jsonb;
    r record;
BEGIN
    -- The project: by id (the service was given one) or by slug among active projects (the API).
    IF p_project IS NULL THEN
        SELECT p.id, p.k, p.calibration_share INTO v_project, v_k, v_share
        FROM {project} p WHERE p.slug = p_slug AND p.is_active;
    ELSE
        SELECT p.id, p.k, p.calibration_share INTO v_project, v_k, v_share FROM {project} p WHERE p.id = p_project;
    END IF;
    IF v_project IS NULL THEN
        RETURN QUERY SELECT 'no_project'::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb,
            NULL::timestamptz, NULL::timestamptz, NULL::integer, NULL::bigint, NULL::text, NULL::bigint, NULL::text,
            NULL::text;
        RETURN;
    END IF;

    -- One lease at a time per labeler (double clicks, client retries).
    PERFORM 1 FROM {user} u WHERE u.id = p_labeler FOR NO KEY UPDATE;

    -- Leases past their expiry give their slots back (in comparison order, as assignments_expire).
    IF EXISTS (SELECT 1 FROM {assignment} e JOIN {comparison} ec ON ec.id = e.comparison_id
               WHERE e.state = 'leased' AND e.expires_at <= p_now AND ec.project_id = v_project) THEN
        FOR r IN
            WITH expired AS (
                SELECT e.id, e.comparison_id FROM {assignment} e JOIN {comparison} ec ON ec.id = e.comparison_id
                WHERE e.state = 'leased' AND e.expires_at <= p_now AND ec.project_id = v_project
                LIMIT 1000 FOR UPDATE OF e SKIP LOCKED
            ), marked AS (
                UPDATE {assignment} x SET state = 'expired' FROM expired WHERE x.id = expired.id
                RETURNING x.comparison_id
            )
            SELECT m.comparison_id AS id, count(*) AS n FROM marked m GROUP BY m.comparison_id ORDER BY m.comparison_id
        LOOP
            UPDATE {comparison} c SET open_slots = c.open_slots + r.n WHERE c.id = r.id;
        END LOOP;
    END IF;

    -- The labeler's live lease in the project comes back (a reload shows the same item).
    SELECT a.id INTO v_lease FROM {assignment} a JOIN {comparison} c ON c.id = a.comparison_id
    WHERE a.labeler_id = p_labeler AND c.project_id = v_project AND a.state = 'leased' AND a.expires_at > p_now
    ORDER BY a.leased_at LIMIT 1;

    IF v_lease IS NULL THEN
        IF p_research THEN
            v_pools := ARRAY[true, false];
        ELSE
            v_first := random() < v_share;
            v_pools := ARRAY[v_first, NOT v_first];
        END IF;
        -- SKIP LOCKED first; only when that finds nothing, wait for rows another transaction holds.
        <<pick>>
        FOREACH v_wait IN ARRAY ARRAY[false, true] LOOP
            FOREACH v_calibration IN ARRAY v_pools LOOP
                -- Each attempt is a subtransaction: a row it locked that then failed PostgreSQL's
                -- recheck (its last slot taken meanwhile) stays locked until the attempt ends, and an
                -- attempt that finds nothing rolls back, so a transaction never waits for a row while
                -- holding such locks (two pools visited in opposite orders deadlocked that way).
                BEGIN
                    IF v_wait THEN
                        SELECT c.id INTO v_comparison FROM {comparison} c
                        WHERE c.project_id = v_project AND c.status = 'active' AND c.is_calibration = v_calibration
                          AND c.open_slots > 0
                          AND NOT EXISTS (SELECT 1 FROM {assignment} a
                                          WHERE a.comparison_id = c.id AND a.labeler_id = p_labeler)
                        ORDER BY c.id LIMIT 1 FOR UPDATE OF c;
                    ELSE
                        SELECT c.id INTO v_comparison FROM {comparison} c
                        WHERE c.project_id = v_project AND c.status = 'active' AND c.is_calibration = v_calibration
                          AND c.open_slots > 0
                          AND NOT EXISTS (SELECT 1 FROM {assignment} a
                                          WHERE a.comparison_id = c.id AND a.labeler_id = p_labeler)
                        ORDER BY c.id LIMIT 1 FOR UPDATE OF c SKIP LOCKED;
                    END IF;
                    IF v_comparison IS NULL THEN
                        RAISE EXCEPTION USING ERRCODE = 'no_data_found';
                    END IF;
                EXCEPTION WHEN no_data_found THEN
                    v_comparison := NULL;
                END;
                EXIT pick WHEN v_comparison IS NOT NULL;
            END LOOP;
        END LOOP;
        IF v_comparison IS NULL THEN
            RETURN QUERY SELECT 'none'::text, v_project, NULL::bigint, NULL::bigint, NULL::jsonb,
                NULL::timestamptz, NULL::timestamptz, NULL::integer, NULL::bigint, NULL::text, NULL::bigint,
                NULL::text, NULL::text;
            RETURN;
        END IF;
        UPDATE {comparison} c SET open_slots = c.open_slots - 1 WHERE c.id = v_comparison;
        SELECT jsonb_agg(i ORDER BY random()) INTO v_order FROM generate_series(0, v_k - 1) AS i;
        INSERT INTO {assignment} (comparison_id, labeler_id, display_order, leased_at, expires_at, state)
        VALUES (v_comparison, p_labeler, v_order, p_now, p_now + p_lease, 'leased')
        RETURNING id INTO v_lease;
        outcome := 'leased';
    ELSE
        outcome := 'live';
    END IF;

    -- The lease with what the page shows: its comparison's samples and their query.
    RETURN QUERY
    SELECT outcome, v_project, a.id, a.comparison_id, a.display_order, a.leased_at, a.expires_at,
           cs.position::integer, s.id, s.text, q.id, q.context, q.reference
    FROM {assignment} a
    JOIN {entry} cs ON cs.comparison_id = a.comparison_id
    JOIN {sample} s ON s.id = cs.sample_id
    JOIN {query} q ON q.id = s.query_id
    WHERE a.id = v_lease;
END
$fn$;
"""

SUBMIT_SQL = """
CREATE OR REPLACE FUNCTION labeling_submit(
    p_assignment bigint, p_labeler bigint, p_valid boolean, p_position integer, p_unsure boolean,
    p_skipped boolean, p_skip_reason text, p_duration_ms bigint, p_flag_max integer, p_now timestamptz,
    p_created timestamptz)
RETURNS TABLE (outcome text, k integer, version integer, display_order jsonb, label_id bigint, assignment_id bigint,
               comparison_id bigint, labeler_id bigint, chosen_index integer, unsure boolean, skipped boolean,
               skip_reason text, duration_ms bigint, instructions_id bigint, created_at timestamptz)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    a record;
    v_chosen integer;
    v_server_ms bigint;
    v_duration bigint;
    l record;
BEGIN
    -- The assignment, locked (re-read once the lock is granted), with its comparison's status, the
    -- project's K, the project's current instructions and whether this labeler acknowledged them.
    SELECT x.id, x.labeler_id, x.comparison_id, x.display_order, x.leased_at, x.expires_at, x.state,
           c.status, p.k, i.id AS instructions_id, i.version,
           EXISTS (SELECT 1 FROM {ack} ak WHERE ak.instructions_id = i.id AND ak.user_id = p_labeler) AS acknowledged
    INTO a
    FROM {assignment} x
    JOIN {comparison} c ON c.id = x.comparison_id
    JOIN {project} p ON p.id = c.project_id
    LEFT JOIN LATERAL (
        SELECT ins.id, ins.version FROM {instructions} ins WHERE ins.project_id = c.project_id
        ORDER BY ins.version DESC LIMIT 1
    ) i ON true
    WHERE x.id = p_assignment
    FOR UPDATE OF x;

    outcome := CASE
        WHEN a.id IS NULL THEN 'not_found'
        WHEN a.labeler_id <> p_labeler THEN 'forbidden'
        WHEN NOT p_valid OR p_flag_max >= a.k OR (NOT p_skipped AND NOT (p_position >= 0 AND p_position < a.k))
            THEN 'invalid'
    END;
    IF outcome IS NOT NULL THEN
        RETURN QUERY SELECT outcome, a.k::integer, NULL::integer, NULL::jsonb, NULL::bigint, NULL::bigint, NULL::bigint,
            NULL::bigint, NULL::integer, NULL::boolean, NULL::boolean, NULL::text, NULL::bigint, NULL::bigint, NULL::timestamptz;
        RETURN;
    END IF;
    v_chosen := CASE WHEN p_skipped THEN NULL ELSE (a.display_order ->> p_position)::integer END;

    IF a.state = 'submitted' THEN
        -- A replay of the same answer returns the stored label; a different one is a conflict.
        SELECT * INTO l FROM {label} lb WHERE lb.assignment_id = a.id;
        outcome := CASE WHEN l.skipped = p_skipped AND l.chosen_index IS NOT DISTINCT FROM v_chosen
                        THEN 'replay' ELSE 'conflict' END;
        RETURN QUERY SELECT outcome, a.k::integer, a.version::integer, a.display_order, l.id, l.assignment_id, l.comparison_id,
            l.labeler_id::bigint, l.chosen_index::integer, l.unsure, l.skipped, l.skip_reason, l.duration_ms::bigint, l.instructions_id,
            l.created_at;
        RETURN;
    END IF;
    outcome := CASE
        WHEN a.state = 'withdrawn' OR a.status <> 'active' THEN 'withdrawn'
        WHEN a.state = 'expired' OR a.expires_at <= p_now THEN 'expired'
        WHEN a.instructions_id IS NOT NULL AND NOT a.acknowledged THEN 'unread'
    END;
    IF outcome IS NOT NULL THEN
        RETURN QUERY SELECT outcome, a.k::integer, a.version::integer, NULL::jsonb, NULL::bigint, NULL::bigint, NULL::bigint,
            NULL::bigint, NULL::integer, NULL::boolean, NULL::boolean, NULL::text, NULL::bigint, NULL::bigint, NULL::timestamptz;
        RETURN;
    END IF;

    -- Trust the client's timer only when it is plausible against the server's clock.
    v_server_ms := greatest(0, floor(extract(epoch FROM p_now - a.leased_at) * 1000))::bigint;
    v_duration := CASE WHEN p_duration_ms > 0 AND p_duration_ms <= v_server_ms + 5000
                       THEN p_duration_ms ELSE v_server_ms END;
    INSERT INTO {label} (assignment_id, comparison_id, labeler_id, chosen_index, unsure, skipped, skip_reason,
                         duration_ms, instructions_id, created_at)
    VALUES (a.id, a.comparison_id, p_labeler, v_chosen, p_unsure, p_skipped, p_skip_reason, v_duration,
            a.instructions_id, p_created)
    RETURNING * INTO l;
    UPDATE {assignment} x SET state = 'submitted' WHERE x.id = a.id;
    -- A skip is not an answer: its slot goes back to the pool for someone else.
    UPDATE {comparison} c
    SET label_count = c.label_count + CASE WHEN p_skipped THEN 0 ELSE 1 END,
        open_slots = c.open_slots + CASE WHEN p_skipped THEN 1 ELSE 0 END
    WHERE c.id = a.comparison_id;
    RETURN QUERY SELECT 'created'::text, a.k::integer, a.version::integer, a.display_order, l.id, l.assignment_id, l.comparison_id,
        l.labeler_id::bigint, l.chosen_index::integer, l.unsure, l.skipped, l.skip_reason, l.duration_ms::bigint, l.instructions_id,
        l.created_at;
END
$fn$;
"""


def _tables(apps) -> dict:
    def table(label):
        return apps.get_model(*label.split(".", 1))._meta.db_table

    return {
        "project": table("labeling.Project"), "comparison": table("labeling.Comparison"),
        "assignment": table("labeling.Assignment"), "entry": table("labeling.ComparisonSample"),
        "sample": table("labeling.Sample"), "query": table("labeling.Query"), "label": table("labeling.Label"),
        "instructions": table("labeling.Instructions"), "ack": table("labeling.InstructionsAck"),
        "user": table(settings.AUTH_USER_MODEL),
    }


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    tables = _tables(apps)
    schema_editor.execute(NEXT_SQL.format(**tables))
    schema_editor.execute(SUBMIT_SQL.format(**tables))


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP FUNCTION IF EXISTS labeling_next(bigint, text, bigint, boolean, timestamptz, interval)")
    schema_editor.execute("DROP FUNCTION IF EXISTS labeling_submit(bigint, bigint, boolean, integer, boolean, boolean, "
                          "text, bigint, integer, timestamptz, timestamptz)")


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0005_project_calibration_labels_wanted'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create_functions, drop_functions)]
