"""Therapy: what a treatment does to a patient, including side effects graded with CTCAE v5.0 (``ilsim.therapy.ctcae``)."""
