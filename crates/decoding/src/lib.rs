//! speccascade-decoding: every method of the paper as a driver over any two LanguageModels.
