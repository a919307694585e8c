-- When each pacing key (a Flowroute account, a Twilio number) last called the provider: the fence takes the
-- next send only its interval after that, so a late timer or a slow round trip never squeezes two sends
-- closer than the provider allows.
ALTER TABLE send_pacing ADD COLUMN last_sent timestamptz;
