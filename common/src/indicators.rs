//! The indicator engine (rates, roll-ups, energy and carbon, green-factory
//! scoring, questionnaire bands, progress against targets). Filled in by the
//! foundation work; see INDICATORS.md sections 1 to 4.
