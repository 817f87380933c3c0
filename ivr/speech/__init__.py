"""Speech: recordings to Chinese ticket text, offline (no Flask here).

- `audio`: prepare_audio() decodes WAV / μ-law WAV / MP3 into mono 16-bit channels at the model's rate.
- `engine`: load_model() (once per process), SpeechEngine.transcribe() → Recognition, resolve_model_path().
- `text`: normalise_transcript() joins Vosk's tokens and writes address/room/phone numbers as digits.
- `triage`: triage() flags urgent messages by the keywords in triage_keywords.txt.
- `model_store`: fetch_model() / install_model_archive() verify and unpack models atomically.
- `status`: speech_model_status() / speech_model_installed(): is the configured model there (health, console).

Submodules are imported explicitly so that, for example, triage does not load Vosk.
"""
