package integration

import "testing"

// TestStandalone runs the suite with a standalone redis-server upstream.
func TestStandalone(t *testing.T) { runSuite(t, standaloneUp) }

// TestCluster runs the suite with a 3-master Redis Cluster upstream.
func TestCluster(t *testing.T) { runSuite(t, clusterUp) }

// TestSentinel runs the suite with a master and a replica under a sentinel
// as the upstream.
func TestSentinel(t *testing.T) { runSuite(t, sentinelUp) }

// runSuite is the behavioural suite; every test gets its own proxy on a
// flushed upstream, so they do not see each other's keys.
func runSuite(t *testing.T, up *upstream) {
	tests := []struct {
		name string
		run  func(*testing.T, *upstream)
	}{
		// Sessions (sessions_test.go).
		{"SessDefaults", testSessDefaults},
		{"SessExplicitTTL", testSessExplicitTTL},
		{"SessClampMinMax", testSessClampMinMax},
		{"SessCookieExpires", testSessCookieExpires},
		{"SessTTLRules", testSessTTLRules},
		{"SessTouch", testSessTouch},
		{"SessTouchDisabled", testSessTouchDisabled},
		{"SessInvalidPayload", testSessInvalidPayload},
		{"SessMaxPayload", testSessMaxPayload},
		{"SessInvalidIDs", testSessInvalidIDs},
		{"SessRequireExpires", testSessRequireExpires},

		// Tombstones (tombstones_test.go).
		{"TombstoneOnDestroy", testTombstoneOnDestroy},
		{"TombstoneRefusesWrites", testTombstoneRefusesWrites},
		{"TombstoneReadsSeeNothing", testTombstoneReadsSeeNothing},
		{"TombstoneOnWriteIgnore", testTombstoneOnWriteIgnore},
		{"TombstonesDisabled", testTombstonesDisabled},
		// tombstone.format = "typed", native writes (typed_test.go).
		{"TypedTombstoneOnDestroy", testTypedTombstoneOnDestroy},
		{"TypedTombstoneRefusesWrites", testTypedTombstoneRefusesWrites},
		{"TypedTombstoneReadsSeeNothing", testTypedTombstoneReadsSeeNothing},
		{"TypedTombstoneOnWriteIgnore", testTypedTombstoneOnWriteIgnore},
		{"TypedTombstoneListings", testTypedTombstoneListings},
		{"TypedTombstoneHashSession", testTypedTombstoneHashSession},
		{"TombstoneSwitchStringToTyped", testTombstoneSwitchStringToTyped},
		{"TombstoneSwitchTypedToString", testTombstoneSwitchTypedToString},
		{"TypedTombstoneRace", testTypedTombstoneRace},
		{"TypedTombstoneNativeWrites", testTypedTombstoneNativeWrites},

		// Plain commands on session keys (plain_test.go).
		{"GetMGet", testGetMGet},
		{"SetOptions", testSetOptions},
		{"SetSyntaxErrors", testSetSyntaxErrors},
		{"SetKeepTTL", testSetKeepTTL},
		{"SetexPsetexSetnxGetset", testSetexPsetexSetnxGetset},
		{"GetEx", testGetEx},
		{"GetDel", testGetDel},
		{"MSetAcrossSlots", testMSetAcrossSlots},
		{"DelUnlinkAcrossSlots", testDelUnlinkAcrossSlots},
		{"ExistsAcrossSlots", testExistsAcrossSlots},
		{"ExpireFamily", testExpireFamily},
		{"Persist", testPersist},
		{"TTLTypeStrlen", testTTLTypeStrlen},
		{"OutsidePrefixDeny", testOutsidePrefixDeny},
		{"OutsidePrefixPassthrough", testOutsidePrefixPassthrough},
		{"ChunkedCommands", testChunkedCommands}, // over 1024 keys (chunks_test.go)
		{"ChunkedRefusals", testChunkedRefusals},

		// Connection and unsupported commands (connection_test.go).
		{"UnknownCommands", testUnknownCommands},
		{"PingEcho", testPingEcho},
		{"Quit", testQuit},
		{"Reset", testReset},
		{"Auth", testAuth},
		{"Users", testUsers},
		{"Hello", testHello},
		{"Select", testSelect},
		{"Client", testClient},
		{"ReadonlyReadwrite", testReadonlyReadwrite},
		{"Info", testInfo},
		{"Command", testCommand},
		{"Time", testTime},
		{"DBSize", testDBSize},
		{"GoRedisDefaultHandshake", testGoRedisDefaultHandshake},

		// Pipelining, NOSCRIPT, races (pipeline_test.go).
		{"Pipeline", testPipeline},
		{"PipelinedReads", testPipelinedReads},
		{"PipelinedMissesAnswerAtOnce", testPipelinedMissesAnswerAtOnce},
		{"MissesAcrossSlots", testMissesAcrossSlots},
		{"SplitPipeline", testSplitPipeline},
		{"ConcurrentWritesShareCalls", testConcurrentWritesShareCalls},
		{"ConcurrentReadsShareCalls", testConcurrentReadsShareCalls},
		{"NoScriptRecovery", testNoScriptRecovery},
		{"RaceSetDestroy", testRaceSetDestroy},
		{"RacePlainSetDel", testRacePlainSetDel},

		// Transactions (tx_test.go).
		{"TxPolicy", testTxPolicy},
		{"TxTombstone", testTxTombstone},
		{"TxExecAbort", testTxExecAbort},
		{"TxCrossSlot", testTxCrossSlot},
		{"TxWatch", testTxWatch},
		{"TxOptimisticCounter", testTxOptimisticCounter},

		// Bulk commands (bulk_test.go).
		{"BulkReads", testBulkReads},
		{"BulkClear", testBulkClear},

		// Fields (fields_test.go).
		{"Fields", testFields},
		{"FieldsConcurrent", testFieldsConcurrent},

		// Hash sessions (hashes_test.go).
		{"HashSessions", testHashSessions},
		{"HashMaxPayload", testHashMaxPayload},
		{"HashOutsidePrefix", testHashOutsidePrefix},
		{"HashAltSessionStore", testHashAltSessionStore},

		// Locks: phpredis's <sid>_LOCK (locks_test.go).
		{"Locks", testLocks},

		// Scripts with the policy inside (scripts_test.go).
		{"ScriptPolicy", testScriptPolicy},
		{"ScriptCache", testScriptCache},
		{"ScriptPhpredisUnlock", testScriptPhpredisUnlock},
		{"ScriptInTx", testScriptInTx},

		// Owners: "log out everywhere" (owner_test.go).
		{"OwnerIndex", testOwnerIndex},
		{"OwnerIndexOff", testOwnerIndexOff},

		// Timeouts (timeouts_test.go).
		{"IdleTimeout", testIdleTimeout},
		{"AbsoluteTimeout", testAbsoluteTimeout},
		{"AbsoluteEncrypted", testAbsoluteEncrypted},
		{"AbsoluteClockSkew", testAbsoluteClockSkew},

		// Codecs (codecs_test.go).
		{"Codecs", testCodecs},
		{"CodecMigration", testCodecMigration},
		{"CodecKeyRotation", testCodecKeyRotation},

		// Sweep (sweep_test.go).
		{"SweepCommand", testSweepCommand},
		{"SweepCLI", testSweepCLI},

		// hash_ids (hashids_test.go).
		{"HashIDs", testHashIDs},

		// Clients and the server itself (server_test.go).
		{"RedisCLI", testRedisCLI},
		{"Clients", testClients}, // go-redis, node-redis, ioredis, express-session, redis-cli (clients_test.go)
		// PHP native sessions with phpredis's locking (php_test.go).
		{"PHPSessionLocking", testPHPSessionLocking},
		{"PHPSessionDestroy", testPHPSessionDestroy},
		{"PHPSessionLockHolderKilled", testPHPSessionLockHolderKilled},
		{"MaxRequestBytes", testMaxRequestBytes},
		{"GracefulShutdown", testGracefulShutdown},

		// Client libraries of other languages, driven from scripts in
		// integration/clients, and redigo (libclients_test.go); an
		// alt-session style hash store (altsession_test.go).
		{"PyTx", testPyTx},
		{"PyLock", testPyLock},
		{"RbMulti", testRbMulti},
		{"RedigoScript", testRedigoScript},
		{"RedigoMulti", testRedigoMulti},
		{"AltSessionStore", testAltSessionStore},
		// Redis tooling: redis-cli --stat, hints, --memkeys; SCAN TYPE,
		// COMMAND GETKEYS (tooling_test.go).
		{"RedisCLIStat", testRedisCLIStat},
		{"RedisCLIHints", testRedisCLIHints},
		{"RedisCLIMemKeys", testRedisCLIMemKeys},
		{"ScanType", testScanType},
		{"CommandGetKeys", testCommandGetKeys},

		// /metrics, /healthz, /readyz (metrics_test.go).
		{"Metrics", testMetrics},

		// Client-side caching (tracking_test.go).
		{"TrackingRueidis", testTrackingRueidis},
		{"TrackingPushes", testTrackingPushes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, up) })
	}
}
