"""The development stack: launcher, embedded servers, test harness and fake SMS providers."""
