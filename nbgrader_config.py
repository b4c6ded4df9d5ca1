"""nbgrader configuration of transformer-lab (course directory = the repository root).

source/<assignment>/  -> nbgrader generate_assignment ->  release/<assignment>/
The gradebook database lives outside the repository's tracked files (build/, ignored; override
with TL_GRADEBOOK=/path/to/gradebook.db): it is rebuilt from the source notebook at will and must
never be committed.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader's config loader)

_root = os.path.dirname(os.path.abspath(__file__))
_db = os.environ.get("TL_GRADEBOOK") or os.path.join(_root, "build", "nbgrader", "gradebook.db")
os.makedirs(os.path.dirname(os.path.abspath(_db)), exist_ok=True)

c.CourseDirectory.root = _root
c.CourseDirectory.course_id = "transformer-lab"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = f"sqlite:///{os.path.abspath(_db)}"
# The exchange (nbgrader release_assignment / collect): nbgrader's default unless NBGRADER_EXCHANGE says where.
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
# CourseDirectory.ignore/include stay at nbgrader's defaults here: autograde must copy the students'
# checkpoints/ folder. tools/build_release.py narrows them for generate_assignment only.

# Student stubs: nbgrader's default stub, kept explicit because the public tests and PARTS.md rely on it.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
# Generating the release never executes the notebook, and never keeps outputs.
c.ClearOutput.enabled = True

# Autograde: a graded (test) cell a student deleted is put back from the gradebook and run, so the
# deletion costs the student that part's points instead of silently skipping its tests.
c.OverwriteCells.add_missing_cells = True

# A test cell's hidden block runs the autograder's checks of its part (lab_autograder.in_notebook):
# a training part's instrumented run may take up to its own 150 s CPU limit, past nbgrader's 30 s.
c.Execute.timeout = 300
