"""The fleet runtime: the fleet application that owns the fleet loop and everything on it, the fleet API
(every call to a server), the supervisor, the call recorder and the database worker."""
