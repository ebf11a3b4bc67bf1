-- labeling_submit: a labeler's answer to their lease, checked and stored, in one call: the assignment locked,
-- the checks in the ORM path's order, the label written (with display_position), the assignment submitted and
-- the answer counted (a skip gives its slot back). labeling/services/labels.py documents the rules; its ORM
-- path (SQLite, and LABELING_SQL_FUNCTIONS=0) is the reference the tests hold this function to.
--
-- This is the installed definition. Any change to this file comes with a new migration that re-runs its
-- loader, LoadSQL("labels.sql", digest=...) (labeling/sql/__init__.py); tests/labeling/test_sql.py fails
-- until there is one.

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
           EXISTS (SELECT 1 FROM labeling_instructionsack ak WHERE ak.instructions_id = i.id AND ak.user_id = p_labeler) AS acknowledged
    INTO a
    FROM labeling_assignment x
    JOIN labeling_comparison c ON c.id = x.comparison_id
    JOIN labeling_project p ON p.id = c.project_id
    LEFT JOIN LATERAL (
        SELECT ins.id, ins.version FROM labeling_instructions ins WHERE ins.project_id = c.project_id
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
        SELECT * INTO l FROM labeling_label lb WHERE lb.assignment_id = a.id;
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
    INSERT INTO labeling_label (assignment_id, comparison_id, labeler_id, chosen_index, display_position, unsure, skipped,
                         skip_reason, duration_ms, instructions_id, created_at)
    VALUES (a.id, a.comparison_id, p_labeler, v_chosen, CASE WHEN p_skipped THEN NULL ELSE p_position END, p_unsure,
            p_skipped, p_skip_reason, v_duration, a.instructions_id, p_created)
    RETURNING * INTO l;
    UPDATE labeling_assignment x SET state = 'submitted' WHERE x.id = a.id;
    -- A skip is not an answer: its slot goes back to the pool for someone else.
    UPDATE labeling_comparison c
    SET label_count = c.label_count + CASE WHEN p_skipped THEN 0 ELSE 1 END,
        open_slots = c.open_slots + CASE WHEN p_skipped THEN 1 ELSE 0 END
    WHERE c.id = a.comparison_id;
    RETURN QUERY SELECT 'created'::text, a.k::integer, a.version::integer, a.display_order, l.id, l.assignment_id, l.comparison_id,
        l.labeler_id::bigint, l.chosen_index::integer, l.unsure, l.skipped, l.skip_reason, l.duration_ms::bigint, l.instructions_id,
        l.created_at;
END
$fn$;
