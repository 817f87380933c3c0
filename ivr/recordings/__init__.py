"""Recordings: fetching Twilio's audio and keeping it byte-exact."""
