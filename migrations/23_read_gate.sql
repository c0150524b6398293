-- A deploy that replaces a view locks it ACCESS EXCLUSIVE, and a map call holds each view it has read until it
-- ends, asking for the next meanwhile: the two took the same views in different orders and deadlocked. Every
-- reporting function and the history capture now read this table first (ACCESS SHARE), and a deploy locks it
-- first (ACCESS EXCLUSIVE): one order for every path. A deploy waits for the calls under way and the calls that
-- come meanwhile queue behind it, holding nothing. It has no column and no row: it is only ever locked.
CREATE TABLE tickets.read_gate ();
COMMENT ON TABLE tickets.read_gate IS
    'Locked, never written: read first by every reporting function and the history capture, locked first by a '
    'deploy that replaces a view (migrations/read/README.md, "Deploying while the map reads").';
