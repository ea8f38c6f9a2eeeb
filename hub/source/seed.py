"""Realistic demo data: a course, a batch and N participants with a spread of progress and scores.

Names come in Latin, Devanagari and Tamil script and places are real Indian states and districts, so
the CSV, the dashboard and a spreadsheet's handling of the byte-order mark can be judged on data that
looks like DIKSHA's.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any, TextIO

from hub.source import Source

FIRST = [
    "Aarav", "Priya", "Rahul", "Ananya", "Vikram", "Sneha", "Arjun", "Kavya", "Rohan", "Isha", "Sanjay",
    "Meera", "Karthik", "Divya", "Amit", "Lakshmi", "Harpreet", "Fatima", "Joseph", "Nandini",
    "आरव", "प्रिया", "राहुल", "अनन्या", "विक्रम", "स्नेहा", "अर्जुन", "काव्या", "सुनीता", "मोहन",
    "முருகன்", "கயல்விழி", "செல்வி", "அருண்", "தமிழ்ச்செல்வன்",
]  # fmt: skip
LAST = [
    "Sharma", "Verma", "Iyer", "Reddy", "Nair", "Patel", "Singh", "Das", "Kumar", "Gupta", "Menon",
    "Banerjee", "Khan", "Joshi", "Pillai", "Yadav", "शर्मा", "वर्मा", "सिंह", "यादव", "गुप्ता", "मिश्रा",
    "சுப்பிரமணியம்", "ராஜன்", "கிருஷ்ணன்",
]  # fmt: skip
PLACES = {
    "Uttar Pradesh": ["Lucknow", "Varanasi", "Agra", "Prayagraj", "Gorakhpur"],
    "Maharashtra": ["Pune", "Nagpur", "Nashik", "Aurangabad", "Thane"],
    "Karnataka": ["Bengaluru Urban", "Mysuru", "Belagavi", "Dharwad", "Kalaburagi"],
    "Tamil Nadu": ["Chennai", "Coimbatore", "Madurai", "Tiruchirappalli", "Salem"],
    "Bihar": ["Patna", "Gaya", "Muzaffarpur", "Bhagalpur", "Darbhanga"],
    "Rajasthan": ["Jaipur", "Jodhpur", "Udaipur", "Kota", "Ajmer"],
    "Kerala": ["Thiruvananthapuram", "Ernakulam", "Kozhikode", "Thrissur", "Kannur"],
    "Madhya Pradesh": ["Bhopal", "Indore", "Jabalpur", "Gwalior", "Ujjain"],
    "Odisha": ["Khordha", "Cuttack", "Ganjam", "Sambalpur", "Mayurbhanj"],
    "Gujarat": ["Ahmedabad", "Surat", "Vadodara", "Rajkot", "Bhavnagar"],
}
BOARDS = ["CBSE", "ICSE", "State Board", "IB"]
USER_TYPES = [("teacher", "Head Teacher"), ("teacher", "Subject Teacher"), ("administrator", "BRC"),
              ("teacher", ""), ("student", "")]  # fmt: skip
COURSE_NAMES = ["Foundational Literacy and Numeracy", "निष्ठा: School Leadership", "Toy-based Pedagogy",
                "Learning Outcomes and Competency", "Art-integrated Learning"]  # fmt: skip
USER_COLUMNS = ("user_id", "name", "state", "district", "org_name", "school_id", "school_name", "block_name",
                "cluster_name", "user_type", "user_sub_type", "declared_board")  # fmt: skip
ENROLMENT_COLUMNS = (
    "batch_id",
    "user_id",
    "enrolled_date",
    "completed_date",
    "progress",
    "certificate_issued",
)
SCORE_COLUMNS = ("batch_id", "user_id", "content_id", "score", "attempts")
ASSESSMENTS_PER_COURSE = 3
MAX_SCORE = 10
CHUNK = 20_000


def _participant(rng: random.Random, batch_id: str, start: date, assessments: list[str]) -> tuple[tuple, tuple, list]:
    user_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    state = rng.choice(list(PLACES))
    district = rng.choice(PLACES[state])
    school = rng.randrange(10_000, 99_999)
    user_type, sub_type = rng.choice(USER_TYPES)
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    school_id = f"{school}{rng.randrange(100, 999)}"
    user = (
        user_id, name, state, district, f"Government of {state}", school_id, f"GHS {district} {school % 100}",
        f"{district} Block {school % 7 + 1}", f"Cluster {school % 13 + 1}", user_type, sub_type, rng.choice(BOARDS),
    )  # fmt: skip
    enrolled = start + timedelta(days=rng.randrange(0, 30))
    roll = rng.random()
    completed = None
    if roll < 0.25:
        progress = 0
    elif roll < 0.7:
        progress = rng.randrange(1, 100)
    else:
        progress = 100
        completed = (enrolled + timedelta(days=rng.randrange(1, 60))).isoformat()
    certificate = 1 if completed and rng.random() < 0.85 else 0
    enrolment = (batch_id, user_id, enrolled.isoformat(), completed, progress, certificate)
    scores = [
        (batch_id, user_id, content_id, rng.randrange(0, MAX_SCORE + 1), rng.randrange(1, 4))
        for content_id in assessments
        if progress > 30 and rng.random() < 0.8
    ]
    return user, enrolment, scores


def _chunks(rng: random.Random, n: int, batch_id: str, start: date, assessments: list[str]) -> Iterator[tuple]:
    for offset in range(0, n, CHUNK):
        users, enrolments, scores = [], [], []
        for _ in range(min(CHUNK, n - offset)):
            user, enrolment, score_rows = _participant(rng, batch_id, start, assessments)
            users.append(user)
            enrolments.append(enrolment)
            scores.extend(score_rows)
        yield users, enrolments, scores


async def seed(
    source: Source,
    participants: int,
    batch_id: str | None = None,
    course_id: str | None = None,
    mentor_id: str | None = None,
    rng_seed: int | None = None,
    progress: TextIO | None = sys.stderr,
    batch_name: str | None = None,
) -> dict[str, Any]:
    rng = random.Random(rng_seed)
    course_id = course_id or f"do_{rng.randrange(10**17, 10**18)}"
    batch_id = batch_id or f"{rng.randrange(10**17, 10**18)}"
    mentor_id = mentor_id or str(uuid.UUID(int=rng.getrandbits(128), version=4))
    start = date.today() - timedelta(days=rng.randrange(30, 120))
    assessments = [f"do_{course_id[-6:]}{i:02d}assess" for i in range(1, ASSESSMENTS_PER_COURSE + 1)]
    await source.insert("courses", ("course_id", "name"), [(course_id, rng.choice(COURSE_NAMES))])
    await source.insert(
        "course_assessments",
        ("course_id", "content_id", "name", "position", "max_score"),
        [(course_id, a, f"Assessment {i}", i, MAX_SCORE) for i, a in enumerate(assessments, 1)],
    )
    await source.insert(
        "batches",
        ("batch_id", "course_id", "name", "status", "start_date", "end_date", "created_by"),
        [(batch_id, course_id, batch_name or f"Batch {start:%b %Y}", 1, start.isoformat(),
          (start + timedelta(days=180)).isoformat(), mentor_id)],
    )  # fmt: skip
    await source.insert("batch_mentors", ("batch_id", "user_id"), [(batch_id, mentor_id)])
    done = 0
    began = time.monotonic()
    for users, enrolments, scores in _chunks(rng, participants, batch_id, start, assessments):
        await source.insert("users", USER_COLUMNS, users)
        await source.insert("enrolments", ENROLMENT_COLUMNS, enrolments)
        await source.insert("assessment_scores", SCORE_COLUMNS, scores)
        done += len(users)
        if progress:
            rate = done / max(time.monotonic() - began, 1e-6)
            print(f"\rseeding {done:,}/{participants:,} participants ({rate:,.0f}/s)", end="", file=progress)
    await source.analyze()
    if progress and participants:
        print(file=progress)
    return {"courseId": course_id, "batchId": batch_id, "mentorId": mentor_id, "participants": participants}
