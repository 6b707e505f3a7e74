//! Example manifests for the Skiff lab walkthrough live beside this file as YAML.
