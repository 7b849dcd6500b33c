<?php
// One PHP request on a native session (session.save_handler = redis, from
// the command line's -d options), driven by integration/php_test.go:
//
//   php -d session.save_handler=redis -d session.save_path=… session.php ID ACTION [SLEEP_MS]
//
// ACTION is "incr" (read counter, add one, write), "read" (change nothing:
// session.lazy_write then only refreshes the TTL) or "destroy"
// (session_destroy). SLEEP_MS is how long it sleeps after reading, holding
// the lock when locking is on. It prints a JSON line once session_start
// returned, and one when it ends: what it read, what PHP reported, and
// times in milliseconds since the epoch — asked (before session_start),
// acquired (after it returned: the lock is held and the session read),
// close (before session_write_close or session_destroy, which write or
// delete and release the lock), released (after it), end.

$errors = [];
set_error_handler(function ($no, $msg) use (&$errors) {
    $errors[] = $msg;
    return true;
});

function now_ms(): float
{
    return round(microtime(true) * 1000, 3);
}

if ($argc < 3) {
    fwrite(STDERR, "usage: session.php ID incr|read|destroy [SLEEP_MS]\n");
    exit(2);
}
[$id, $action, $sleep] = [$argv[1], $argv[2], (int)($argv[3] ?? 0)];

$out = ['pid' => getmypid(), 'id' => $id, 'action' => $action];
$out['asked'] = now_ms();
session_id($id);
try {
    $out['started'] = session_start();
} catch (Throwable $e) {
    $out['started'] = false;
    $errors[] = get_class($e) . ': ' . $e->getMessage();
}
$out['acquired'] = now_ms();
// The driver learns here that the session is read (and locked).
echo json_encode(['acquired' => $out['acquired']]), "\n";
$out['read'] = $_SESSION['counter'] ?? null;
if ($sleep > 0) {
    usleep($sleep * 1000);
}
$out['close'] = now_ms();
// phpredis throws RedisException for an error reply whose code is not ERR
// (the proxy's TOMBSTONE): recorded with PHP's warnings.
try {
    if ($action === 'destroy') {
        $out['ok'] = session_destroy();
    } elseif ($action === 'read') {
        $out['ok'] = session_write_close();
    } else {
        $_SESSION['counter'] = ($out['read'] ?? 0) + 1;
        $_SESSION['by'] = getmypid();
        $out['ok'] = session_write_close();
    }
} catch (Throwable $e) {
    $out['ok'] = false;
    $errors[] = get_class($e) . ': ' . $e->getMessage();
}
$out['released'] = now_ms();
$out['errors'] = $errors;
$out['end'] = now_ms();
echo json_encode($out), "\n";
