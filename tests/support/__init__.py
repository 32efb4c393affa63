"""Real services for the test suite, started privately on loopback.

Fixtures (registered by tests/conftest.py through `pytest_plugins`):

- `imap_mailbox` -> DovecotServer: private Dovecot, INBOX empty and rebuilt (UIDs from 1), no
  other folders. `.host .port .ssl_port .user .password .env(security) .ssl_context()`,
  `.append() .uids() .flags() .fetch_all() .create_folder() .recreate_folder() .stop() .kill()
  .start() .restart()`. `dovecot` is the session-wide server behind it.
- `smtp_server` -> SmtpServer (plain); `smtp_server_factory(security=..., users=..., require_tls=...)`
  for STARTTLS / implicit TLS / AUTH. `.messages .wait_for(n) .fail_with(reply) .stop() .start()`
  (same port) `.env()`.
- `browser` (session) and `page` (new context per test; a failing test saves
  artifacts/screenshots/FAILED-<test>.png); `live_server_factory(wsgi_app)` -> LiveServer `.url`;
  `screenshot(page, name)` from tests.support.browser.
- `sftp_server` -> SftpServer: private sshd, SFTP only, chrooted to `.root_folder` (emptied per
  test), key-only login: `.host .port .username .client_key_path .known_hosts_path
  .host_key_fingerprint .client()`.
- `postgres_database` -> TempDatabase (`.url` SQLAlchemy URL, `.name`, `.conninfo`), dropped after
  the test; `postgres_url`; `postgres_database_factory(prefix)`; `session_postgres_database`.
- `redis_db` -> RedisTestDb: a Redis database leased for the test (`.url .db .client .flush()`);
  `redis_namespace` -> RedisNamespace: a key prefix (`.key(name) .keys() .flush()`).

A missing service skips the test locally and fails it when CI=true (services.require).
scripts/ensure-services.sh installs and starts what these need.
"""
