// Package config loads, defaults and validates the Sotto server
// configuration.
//
// It owns the main YAML file given to "sotto serve --config" and the SOTTO_*
// environment variables that override its scalar keys. It also owns the two
// files that the main file names. The clients file lists OAuth clients and
// their credentials. The scope catalog lists the actions an action token can
// carry, with their audiences, lifetimes, groups and step-up requirements.
//
// Load reads all of it strictly, so that an unknown key is an error rather
// than a silently ignored typo, and it reports every problem of all three
// files at once in a *ValidationError. Every Problem names the file or
// environment variable, the key path, the value (never a secret's) and
// what a valid value looks like. The file docs/configuration.md is the
// reference for every key.
package config
