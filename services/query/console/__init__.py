"""The web console served at ``/console`` (docs/console.md): sign-in, sessions, static assets."""
