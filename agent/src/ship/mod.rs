//! Report sealing, signing, enrolment and shipping to the aggregator.
