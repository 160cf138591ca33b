-- Each user's favourite cities and event types, from their preferences (the settings
-- service's `SettingsChanged`, namespace `preferences`, scope `user`): the newest version
-- seen wins. Both lists are JSON arrays of strings, as the user wrote them.
CREATE TABLE favourites (
    user_id    UUID PRIMARY KEY,
    version    BIGINT NOT NULL,
    cities     TEXT NOT NULL,
    types      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
